import Foundation
import DroverModel

/// Parsers for the unit-bearing strings of the spec language.
public enum SpecUnits {
  static let binaryUnits: [(String, UInt64)] = [
    ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1),
  ]

  /// `512MiB`, `2GiB`, `1.5GiB`, `10GB`; a bare number has no unit and is refused.
  public static func parseByteSize(_ text: String) -> ByteSize? {
    let trimmed = text.trimmingWhitespace()
    for (unit, factor) in binaryUnits where trimmed.hasSuffix(unit) {
      let number = trimmed.dropLast(unit.count).trimmingWhitespace()
      if let whole = UInt64(number) {
        let (product, overflow) = whole.multipliedReportingOverflow(by: factor)
        return overflow ? nil : ByteSize(bytes: product)
      }
      if let fraction = Double(number), fraction.isFinite, fraction >= 0, fraction * Double(factor) < 9e18,
        number.allSatisfy({ $0.isNumber || $0 == "." })
      {
        return ByteSize(bytes: UInt64(fraction * Double(factor)))
      }
      return nil
    }
    return nil
  }

  /// `500ms`, `30s`, `5m`, `2h`; a bare number has no unit and is refused.
  public static func parseTimeSpan(_ text: String) -> TimeSpan? {
    let trimmed = text.trimmingWhitespace()
    for (unit, factor) in [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)] where trimmed.hasSuffix(unit) {
      let number = trimmed.dropLast(unit.count)
      guard !number.isEmpty, number.allSatisfy(\.isNumber), let n = Int(number), n <= 10_000_000 else { continue }
      return TimeSpan(milliseconds: n * factor)
    }
    return nil
  }

  static let drivers: Set<String> = [
    "qemu", "test", "lxc", "xen", "libxl", "vbox", "vmwareplayer", "vmwarews", "esx", "bhyve", "ch", "vz",
  ]
  static let transports: Set<String> = ["unix", "ssh", "libssh", "libssh2", "tcp", "tls", "ext"]

  /// `driver[+transport]://[user@][host][:port]/path[?query]`, as libvirt's URI reference gives it.
  /// URI parameters that make libvirt run a program (`command`, `netcat`) or choose what to trust
  /// (`no_verify`, `pkipath`, `keyfile`, `known_hosts`, `known_hosts_verify`, `sshauth`): a spec
  /// comes from a pull request, and must never decide either. Compared case-insensitively.
  public static let unsafeParameters: Set<String> = [
    "command", "netcat", "no_verify", "pkipath", "keyfile", "known_hosts", "known_hosts_verify", "sshauth",
  ]

  /// Why a libvirt URI may not come from a spec (or a file anyone may edit), or nil when it may:
  /// the `ext` transport runs a program, and so do or trust-deciding parameters above.
  public static func unsafeURIReason(_ text: String) -> String? {
    guard let sep = text.range(of: "://") else { return nil }
    if text[..<sep.lowerBound].lowercased().hasSuffix("+ext") { return "the ext transport runs a program" }
    let query = text.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
    for pair in query.split(separator: "&") {
      let key = (pair.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "").lowercased()
      let decoded = key.removingPercentEncoding ?? key
      if unsafeParameters.contains(decoded) || decoded != key && unsafeParameters.contains(decoded.lowercased()) {
        return "the \(decoded)= parameter \(["command", "netcat"].contains(decoded) ? "runs a program" : "decides what the connection trusts")"
      }
    }
    return nil
  }

  public static func isLibvirtURI(_ text: String) -> Bool {
    guard let sep = text.range(of: "://") else { return false }
    let scheme = text[..<sep.lowerBound]
    let parts = scheme.split(separator: "+", omittingEmptySubsequences: false)
    guard drivers.contains(String(parts[0])), parts.count <= 2 else { return false }
    if parts.count == 2 && !transports.contains(String(parts[1])) { return false }
    let rest = text[sep.upperBound...]
    guard let slash = rest.firstIndex(of: "/") else { return false }
    let authority = rest[..<slash]
    let path = rest[rest.index(after: slash)...].prefix { $0 != "?" }
    guard !path.isEmpty else { return false }
    let allowed: (Character) -> Bool = { $0.isASCII && !$0.isWhitespace && $0 != "<" && $0 != ">" && $0 != "\"" }
    return authority.allSatisfy(allowed) && rest.allSatisfy(allowed)
  }
}

extension StringProtocol {
  func trimmingWhitespace() -> Substring {
    let s = Substring(self)
    guard let first = s.firstIndex(where: { !$0.isWhitespace }) else { return s[s.endIndex...] }
    let last = s.lastIndex(where: { !$0.isWhitespace })!
    return Substring(s[first...last])
  }
}
