/// Which libvirt driver a host runs, and what that means for Drover: answered here once.
///
/// libvirt's test driver defines and "runs" domains (and keeps storage pools and backed volumes
/// in memory) but boots nothing; its URI scheme is `test`, alone (in this process) or with a
/// transport (`test+unix`, `test+tls`, … through libvirtd).
public enum HostDriver {
  /// Whether a connection whose driver type (`virConnectGetType`) is `driverType` boots domains:
  /// the authority, asked of libvirt once per backend.
  public static func bootsNodes(driverType: String?) -> Bool { driverType?.lowercased() != "test" }

  /// The same answer read off a URI, for decisions made without a connection (a plan's time
  /// estimate).
  public static func bootsNodes(uri: String) -> Bool { scheme(uri).driver != "test" }

  /// Whether the URI opens the driver inside this process (no daemon, no round trip to overlap).
  public static func isInProcess(uri: String) -> Bool {
    let s = scheme(uri)
    return s.driver == "test" && s.transport == nil
  }

  static func scheme(_ uri: String) -> (driver: Substring, transport: Substring?) {
    let scheme = uri.prefix { $0 != ":" }
    guard let plus = scheme.firstIndex(of: "+") else { return (scheme, nil) }
    return (scheme[..<plus], scheme[scheme.index(after: plus)...])
  }
}
