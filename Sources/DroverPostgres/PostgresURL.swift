import DroverBasics
import Foundation

/// `state.url` of drover.yaml: `postgres://user@host[:port]/database`. A password in it is
/// refused (it would be committed with the project): it comes from `DROVER_STATE_PASSWORD`.
public struct PostgresURL: Sendable, Hashable {
  public var user: String
  public var host: String
  public var port: Int
  public var database: String

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
    // TLS to the state database is not built yet: a URL asking for it is refused, never
    // quietly sent in the clear. Only sslmode=disable (a loopback or a trusted link) is taken.
    for item in components.queryItems ?? [] {
      guard item.name == "sslmode", item.value == "disable" else {
        throw bad("asks for '\(item.name)=\(item.value ?? "")'; this Drover speaks to its state database without TLS only (sslmode=disable, or nothing)")
      }
    }
    let port = components.port ?? 5432
    guard (1...65535).contains(port) else { throw bad("has no valid port") }
    self.user = user
    self.host = host
    self.port = port
    self.database = database
  }
}
