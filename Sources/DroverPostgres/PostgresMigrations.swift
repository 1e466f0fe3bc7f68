import DroverBasics
import Foundation
import PostgresNIO

/// The schema of the state database, versioned: each migration runs once, in order, in one
/// transaction, under an advisory lock (two Drovers starting at once never both migrate). A
/// database whose schema is newer than this Drover knows is refused, never written.
enum PostgresMigrations {
  /// Migration n is `steps[n - 1]`. Append only: a released migration is never edited.
  static let steps: [[PostgresQuery]] = [
    [
      """
      CREATE TABLE drover_journal (
        project text NOT NULL, pool text NOT NULL, seq bigint NOT NULL, time double precision NOT NULL,
        rollout text NOT NULL, event text NOT NULL, node text, step text, detail text,
        PRIMARY KEY (project, pool, seq))
      """,
      """
      CREATE TABLE drover_lock_holders (
        project text NOT NULL, name text NOT NULL, pid bigint NOT NULL, host text NOT NULL, command text NOT NULL,
        started double precision NOT NULL, backend_pid integer NOT NULL, PRIMARY KEY (project, name))
      """,
    ],
    // 2: each journal record's seal (JournalSeal); rows written before it have none.
    ["ALTER TABLE drover_journal ADD COLUMN mac text"],
    // 3: each pool's heal ledger (HealLedger: sealed JSON), shared by every machine that heals.
    [
      """
      CREATE TABLE drover_heal_ledger (
        project text NOT NULL, pool text NOT NULL, document text NOT NULL, written double precision NOT NULL,
        PRIMARY KEY (project, pool))
      """
    ],
    // 4 (#41): leases and fencing tokens. Every grant of a lock takes the next number of one
    // sequence (monotonic across the database), the holder renews its lease in its row, and every
    // journal record carries the token of the lock it was written under.
    [
      "CREATE SEQUENCE drover_fence_tokens",
      "ALTER TABLE drover_lock_holders ADD COLUMN token bigint, ADD COLUMN lease double precision, ADD COLUMN renewed double precision",
      "ALTER TABLE drover_journal ADD COLUMN fence bigint",
    ],
  ]

  static var latest: Int { steps.count }

  static func run(_ state: PostgresState) throws {
    try state.transaction("the schema check") {
      // Under the lock from the first statement: two first connects never race on CREATE.
      _ = try state.run("SELECT pg_advisory_xact_lock(\(PostgresState.key("drover schema")))", "locking the schema")
      _ = try state.run("CREATE TABLE IF NOT EXISTS drover_schema (version integer PRIMARY KEY, applied double precision NOT NULL)", "preparing the schema table")
      let current = try state.run("SELECT coalesce(max(version), 0) FROM drover_schema", "reading the schema version").first?.decode(Int64.self) ?? 0
      if current > latest {
        throw Diagnostic.error(
          "state.schema", "the state database \(state.location) has schema version \(current); this Drover knows up to \(latest)", subject: "state",
          hint: "upgrade Drover on this machine; an older Drover never writes a newer schema")
      }
      guard current < latest else { return }
      for version in Int(current) + 1...latest {
        for statement in steps[version - 1] { _ = try state.run(statement, "migrating the schema to version \(version)") }
        _ = try state.run("INSERT INTO drover_schema (version, applied) VALUES (\(Int64(version)), \(Date().timeIntervalSince1970))", "recording version \(version)")
      }
    }
  }
}
