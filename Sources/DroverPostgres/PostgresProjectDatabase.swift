import DroverBasics
import Foundation
import PostgresNIO

/// `drover state init` (#40): one database and one role per project, made by the server's
/// administrator, so a project's credentials reach only its own state. Advisory locks are
/// scoped to a database and `pg_locks` reads stay in it, so one project can neither take nor
/// see another's locks; the database's CONNECT is revoked from PUBLIC, so another project's role
/// cannot even open a session there.
public enum PostgresProjectDatabase {
  /// What `initialize` found and did.
  public struct Outcome: Sendable {
    public var role: String
    public var database: String
    public var createdRole: Bool
    public var createdDatabase: Bool
    /// The URL drover.yaml names (`postgres://ROLE@HOST:PORT/DATABASE`).
    public var url: String
  }

  /// The role and database names of `project` (lower case, `-` as `_`, prefixed `drover_`).
  public static func names(project: String) -> String {
    "drover_" + project.lowercased().map { $0 == "-" ? "_" : $0 }.map(String.init).joined()
  }

  /// A new role's password: 24 random bytes as hex (`SystemRandomNumberGenerator` reads the
  /// kernel's CSPRNG).
  public static func newPassword() -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
  }

  /// Whether `name` is an identifier used here unquoted-safe: 1–63 of `[a-z0-9_]`, a letter or
  /// `_` first (what `names` makes from a valid project name).
  static func isIdentifier(_ name: String) -> Bool {
    (1...63).contains(name.utf8.count) && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
      && !(name.utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true)
  }

  /// Creates (when missing) `role`, able to log in with `rolePassword`, and `database` owned by
  /// it, closed to everyone else; connected as the administrator of `adminURL`. Idempotent: an
  /// existing role keeps its password, an existing database is closed to PUBLIC again.
  public static func initialize(
    adminURL: String, adminPassword: String?, trust: PostgresTrust, role: String, database: String, rolePassword: String,
    timeout: Double = 10, callTimeout: Double = 30
  ) throws -> Outcome {
    guard isIdentifier(role), isIdentifier(database) else {
      throw Diagnostic.error(
        "state.init", "role '\(Terminal.printable(role))' and database '\(Terminal.printable(database))' must be 1–63 of a–z, 0–9 and _", subject: "state")
    }
    guard !rolePassword.isEmpty, rolePassword.utf8.count <= 200, !rolePassword.contains("\u{0}") else {
      throw Diagnostic.error("state.init", "the new role's password must be 1–200 bytes without NUL", subject: "state")
    }
    let target = try PostgresURL(adminURL)
    let (connection, channel) = try PostgresState.openSession(target, password: adminPassword, trust: trust, timeout: timeout)
    let admin = PostgresState(location: target.display, project: "", connection: connection, channel: channel, callTimeout: callTimeout)
    let roleExists = try admin.query("SELECT count(*) FROM pg_roles WHERE rolname = \(role)", "looking up role \(role)")
    var outcome = Outcome(
      role: role, database: database, createdRole: false, createdDatabase: false,
      url: "postgres://\(role)@\(target.server)/\(database)")
    if try (roleExists.first?.decode(Int64.self) ?? 0) == 0 {
      // DDL takes no bind parameters: the name is checked above, the password is a quoted literal.
      let literal = "'" + rolePassword.replacingOccurrences(of: "'", with: "''") + "'"
      _ = try admin.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(role) LOGIN NOCREATEDB NOCREATEROLE PASSWORD \(literal)"), "creating role \(role)")
      outcome.createdRole = true
    }
    // The administrator hands the database to the role: PostgreSQL 15 asks a non-superuser to be
    // a member of the owner it names (a superuser already is).
    _ = try admin.query(PostgresQuery(unsafeSQL: "GRANT \(role) TO CURRENT_USER"), "taking role \(role) to hand it its database")
    let databaseExists = try admin.query("SELECT count(*) FROM pg_database WHERE datname = \(database)", "looking up database \(database)")
    if try (databaseExists.first?.decode(Int64.self) ?? 0) == 0 {
      _ = try admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database) OWNER \(role)"), "creating database \(database)")
      outcome.createdDatabase = true
    }
    _ = try admin.query(PostgresQuery(unsafeSQL: "REVOKE ALL ON DATABASE \(database) FROM PUBLIC"), "closing database \(database) to other roles")
    _ = try admin.query(PostgresQuery(unsafeSQL: "GRANT CONNECT, TEMPORARY ON DATABASE \(database) TO \(role)"), "opening database \(database) to \(role)")
    return outcome
  }
}
