import DroverBasics
import Foundation

/// `state.url` of drover.yaml: `postgres://user@host[:port]/database`. A password in it is
/// refused (it would be committed with the project): it comes from `DROVER_STATE_PASSWORD`.
public struct PostgresURL: Sendable, Hashable {
  public var user: String
  public var host: String
  public var port: Int
  public var database: String
  /// `verify-full`, `disable`, or nil (verified TLS unless the machine marks the server insecure).
  public var sslmode: String?

  /// `host:port`, as the machine configuration's state entries are keyed.
  public var server: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

  /// For messages: never a password (there is none).
  public var display: String { "postgres://\(user)@\(host):\(port)/\(database)" }

  public init(_ text: String) throws {
    func bad(_ why: String) -> Diagnostic {
      Diagnostic.error("spec.state.url", "state.url '\(Terminal.printable(text))' \(why)", hint: "for example: postgres://drover@db.example:5432/drover")
    }
    guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
      throw bad("is not a postgres:// URL")
    }
    guard components.password == nil else {
      throw bad("holds a password; it comes from the environment (DROVER_STATE_PASSWORD), never from the project file")
    }
    guard let user = components.user, !user.isEmpty else { throw bad("names no user (postgres://USER@host/database)") }
    guard let host = components.host, !host.isEmpty else { throw bad("names no host") }
    let database = String(components.path.drop { $0 == "/" })
    guard !database.isEmpty, !database.contains("/") else { throw bad("names no database (…/DATABASE)") }
    // TLS is decided by the machine's configuration (its CA for this server, or insecure); the
    // URL may only say which of the two it expects. Anything weaker (prefer, require without
    // verification) is refused, never quietly taken.
    var sslmode: String?
    for item in components.queryItems ?? [] {
      guard item.name == "sslmode", let value = item.value, ["disable", "verify-full"].contains(value) else {
        throw bad("asks for '\(item.name)=\(item.value ?? "")'; Drover takes sslmode=verify-full (the default: verified TLS) or sslmode=disable (a loopback test server the machine marks insecure)")
      }
      sslmode = value
    }
    let port = components.port ?? 5432
    guard (1...65535).contains(port) else { throw bad("has no valid port") }
    self.user = user
    self.host = host
    self.port = port
    self.database = database
    self.sslmode = sslmode
  }

  /// Whether `host` is an IPv4 or IPv6 address literal.
  static func isIPAddress(_ host: String) -> Bool { addressBytes(host) != nil }

  /// The bytes of an IPv4 or IPv6 literal (as a certificate's IP subjectAltName holds them).
  static func addressBytes(_ host: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }
}
