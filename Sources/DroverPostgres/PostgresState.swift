import DroverBasics
import DroverEngine
import DroverRollout
import Foundation
import PostgresNIO
import Synchronization

/// The shared state backend in PostgreSQL (Terraform's `pg` backend is the model): pool locks
/// are session advisory locks, so a killed process frees its locks the moment its connection
/// drops; their holders are rows beside them, shown only while the session holding the lock
/// lives; journal records are rows, each appended by one statement that numbers it.
///
/// Leases (#41): a session proves it is alive. The server ends it once it has been idle for
/// `lease` seconds (`idle_session_timeout`, also inside a transaction), and a thread of this
/// process renews it every third of that — so a frozen (`SIGSTOP`), crashed or partitioned holder
/// loses its locks within `lease`, where TCP keepalive would take hours and never notices a
/// stopped process at all. Each grant carries a fencing token (a database sequence), and
/// `checkFence` proves within what is left of the lease that the session still holds its locks
/// with those tokens: the runner asks before every step that changes a VM.
///
/// A statement whose answer did not come in time has an unknown outcome (a lock attempt may be
/// granted after the caller gave up): the session is closed then, so nothing it may have taken
/// outlives the doubt.
///
/// Synchronous on purpose: the engine is. Every call waits on its future with a deadline
/// (`callTimeout`), so a database that stops answering is an error, never a hang.
public final class PostgresState: SharedStateBackend, @unchecked Sendable {
  public let location: String
  let project: String
  let connection: PostgresConnection
  /// The session's socket: closed outright when an answer is overdue (a graceful close would wait
  /// for the very statement that hangs).
  let channel: (any Channel)?
  let callTimeout: Double
  /// Seconds an idle session lives without a renewal (the server ends it then, and its locks).
  let lease: Double
  let logger = Logger(label: "drover.postgres")
  /// Until when, on this machine's monotonic clock, the lease surely holds: when the last
  /// statement that was answered was sent, plus `lease` (the server's idle clock starts later,
  /// once it answered).
  private let leaseUntil = Mutex<Double>(0)
  /// The fencing token of each lock this session holds.
  private let tokens = Mutex<[String: Int64]>([:])
  /// Signalled when the session goes: the renewing thread stops.
  private let stopRenewing = DispatchSemaphore(value: 0)
  /// One statement at a time on the connection (the journal's numbering relies on it).
  private let serial = NSLock()
  /// Locks this process holds: advisory locks count up per session, so a second take of one
  /// in the same process would succeed where a local lock refuses.
  private let held = Mutex<Set<String>>([])

  /// The lease when drover.yaml names none.
  public static let defaultLease = 15.0
  /// The leases drover.yaml may name (a shorter one renews too often for a slow link; a longer one
  /// leaves a frozen holder's pools locked longer).
  public static let leaseRange = 1.0...600.0

  init(
    location: String, project: String, connection: PostgresConnection, channel: (any Channel)? = nil, callTimeout: Double,
    lease: Double = PostgresState.defaultLease
  ) {
    self.location = location
    self.project = project
    self.connection = connection
    self.channel = channel
    self.callTimeout = callTimeout
    self.lease = min(max(lease, Self.leaseRange.lowerBound), Self.leaseRange.upperBound)
  }

  deinit {
    stopRenewing.signal()
    // Closed before it goes (postgres-nio insists), within a deadline.
    let closing: EventLoopFuture<Void> = connection.close()
    _ = try? Self.wait(closing, seconds: 5, what: "closing the session")
  }

  /// Connects to `url` (`postgres://user@host:port/database`) as `project`, the password from
  /// `password` (the machine, never the project file), over the transport `trust` allows
  /// (`PostgresTransport`), and brings the schema up to date.
  public static func connect(
    url: String, project: String, password: String?, trust: PostgresTrust, timeout: Double = 10, callTimeout: Double = 30,
    lease: Double = PostgresState.defaultLease
  ) throws -> PostgresState {
    let target = try PostgresURL(url)
    let (connection, channel) = try openSession(target, password: password, trust: trust, timeout: timeout)
    let state = PostgresState(
      location: target.display, project: project, connection: connection, channel: channel, callTimeout: callTimeout, lease: lease)
    try state.startLease()
    try PostgresMigrations.run(state)
    return state
  }

  /// Asks the server to end this session after `lease` idle seconds (PostgreSQL 14 and newer),
  /// and starts renewing it.
  func startLease() throws {
    let ms = Int(lease * 1000)
    do {
      for setting in ["idle_session_timeout", "idle_in_transaction_session_timeout"] {
        _ = try query(PostgresQuery(unsafeSQL: "SET \(setting) = \(ms)"), "setting the session's lease")
      }
      // A statement waiting (on a row, a lock) notices a client that went away within a second,
      // and ends — with whatever it took in its session.
      _ = try query(PostgresQuery(unsafeSQL: "SET client_connection_check_interval = \(min(1000, ms / 3))"), "setting the session's lease")
    } catch {
      throw Diagnostic.error(
        "state.postgres", "the state database \(location) cannot lease its sessions: \(Diagnostic.line(of: error))", subject: "state",
        hint: "Drover needs PostgreSQL 14 or newer (idle_session_timeout)")
    }
    let stop = stopRenewing, every = lease / 3
    let thread = Thread { [weak self] in
      while stop.wait(timeout: .now() + every) == .timedOut {
        guard let self else { return }
        self.renew()
      }
    }
    thread.name = "drover.postgres.lease"
    thread.start()
  }

  /// Renews the lease: an update of this session's holder rows (what `drover unlock` reads), or a
  /// ping when it holds none. A session busy past the renewal is not idle, so needs none.
  func renew() {
    guard serial.lock(before: Date().addingTimeInterval(lease / 3)) else { return }
    defer { serial.unlock() }
    guard !connection.isClosed else { return }
    // At least a third of the lease to answer: a renewal late by a moment is still a renewal.
    let left = max(lease / 3, leaseUntil.withLock { $0 } - Self.uptime())
    if tokens.withLock({ $0.isEmpty }) {
      _ = try? run("SELECT 1", "renewing the lease", seconds: left)
    } else {
      _ = try? run(
        "UPDATE drover_lock_holders SET renewed = extract(epoch from clock_timestamp()) WHERE project = \(project) AND backend_pid = pg_backend_pid()",
        "renewing the lease", seconds: left)
    }
  }

  /// This machine's monotonic clock, in seconds, as `watch` paces by (a stepped wall clock never
  /// stretches a lease).
  static func uptime() -> Double { ProcessInfo.processInfo.systemUptime }

  /// A session to `target` over the transport `trust` allows, authenticated, before any query:
  /// verified TLS (its name checked strictly), or guarded plaintext where the machine allows it.
  static func openSession(_ target: PostgresURL, password: String?, trust: PostgresTrust, timeout: Double) throws -> (PostgresConnection, any Channel) {
    let mode = try PostgresTransport.mode(target, trust: trust)
    let seconds = min(max(timeout, 0.1), 3600)
    let loop = MultiThreadedEventLoopGroup.singleton.any()
    let channel = Mutex<(any Channel)?>(nil)
    let future = PostgresTransport.channel(target, mode: mode, on: loop, timeout: seconds).flatMap { opened in
      channel.withLock { $0 = opened }
      return PostgresConnection.connect(
        on: loop, configuration: PostgresTransport.configuration(target, mode: mode, channel: opened, password: password), id: 1,
        logger: Logger(label: "drover.postgres"))
    }
    let connection: PostgresConnection
    do {
      connection = try wait(future, seconds: seconds + 5, what: "connecting to \(target.display)")
    } catch {
      _ = channel.withLock { $0 }?.close(mode: .all)
      if case .plaintext(let outcome) = mode, let why = outcome.refused.withLock({ $0 }) {
        throw Diagnostic.error(
          "state.password-exposed", "the state database \(target.display) \(why) over an unencrypted session; the password was not sent",
          subject: "state", hint: "use verified TLS (ca: in the machine configuration's state entry), or set the server's password_encryption and pg_hba to scram-sha-256")
      }
      throw Diagnostic.error(
        "state.postgres", "cannot connect to the state database \(target.display): \(describe(error))", subject: "state",
        hint: "check state.url in drover.yaml, that the server runs, the machine configuration's state entry for \(target.server), and DROVER_STATE_PASSWORD")
    }
    guard let opened = channel.withLock({ $0 }) else {
      _ = try? wait(connection.close(), seconds: 5, what: "closing the session")
      throw Diagnostic.error("state.postgres", "cannot connect to the state database \(target.display): no channel", subject: "state")
    }
    if case .tls = mode {
      do { try PostgresTransport.checkName(target, channel: opened, seconds: seconds) } catch {
        _ = try? wait(connection.close(), seconds: 5, what: "closing the session")
        throw error
      }
    }
    return (connection, opened)
  }

  // MARK: running statements

  /// Waits for `future` up to `seconds`; a connection that closes meanwhile (the server dropped
  /// the session) ends the wait at once — a query sent on it may never be answered.
  static func wait<T: Sendable>(
    _ future: EventLoopFuture<T>, seconds: Double, what: String, closing: EventLoopFuture<Void>? = nil, onTimeout: () -> Void = {}
  ) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    future.whenComplete { result in
      box.set(result)
      done.signal()
    }
    closing?.whenComplete { _ in
      box.set(.failure(Diagnostic.error("state.postgres", "the state database closed the session (\(what))", subject: "state")))
      done.signal()
    }
    guard done.wait(timeout: .now() + seconds) == .success, let result = box.get() else {
      onTimeout()
      throw Diagnostic.error("state.postgres", "the state database did not answer within \(Int(seconds)) s (\(what))", subject: "state")
    }
    return try result.get()
  }

  /// Runs one statement and returns its rows, within the call deadline.
  func query(_ query: PostgresQuery, _ what: String) throws -> [PostgresRow] {
    try serial.withLock { try run(query, what) }
  }

  /// Runs `body`'s statements as one transaction, no other thread's statement between them.
  func transaction<T>(_ what: String, _ body: () throws -> T) throws -> T {
    try serial.withLock {
      _ = try run("BEGIN", "starting \(what)")
      do {
        let value = try body()
        _ = try run("COMMIT", "committing \(what)")
        return value
      } catch {
        _ = try? run("ROLLBACK", "abandoning \(what)")
        throw error
      }
    }
  }

  /// One statement; the caller holds `serial`. Answered within `seconds` (else `callTimeout`), or
  /// the session is closed: what the statement did is unknown, and nothing it took may outlive it.
  func run(_ query: PostgresQuery, _ what: String, seconds: Double? = nil) throws -> [PostgresRow] {
    guard !connection.isClosed else { throw ended(what, nil) }
    let sent = Self.uptime()
    do {
      let connection = self.connection, channel = self.channel
      let rows = try Self.wait(
        connection.query(query, logger: logger), seconds: seconds ?? callTimeout, what: what, closing: connection.closeFuture,
        onTimeout: {
          if let channel { _ = channel.close(mode: .all) }
          let closing: EventLoopFuture<Void> = connection.close()
          _ = closing
        }
      ).rows
      let lease = self.lease
      leaseUntil.withLock { $0 = max($0, sent + lease) }
      return rows
    } catch let diagnostic as Diagnostic {
      if connection.isClosed, holdsLocks { throw ended(what, diagnostic.message) }
      throw diagnostic
    } catch {
      let code = (error as? PSQLError)?.code
      if connection.isClosed || code == .clientClosedConnection || code == .serverClosedConnection { throw ended(what, Self.describe(error)) }
      // A unique-key collision (SQLSTATE 23505) is told apart by its code, never its words
      // (the server's language is its own).
      let conflict = (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
      throw Diagnostic.error(
        conflict ? "state.postgres-conflict" : "state.postgres", "the state database refused \(what): \(Self.describe(error))", subject: "state")
    }
  }

  /// Whether this session holds a lock (then its end is the end of the lock: fenced).
  var holdsLocks: Bool { !tokens.withLock { $0.isEmpty } }

  /// The session is gone: for a session holding locks, the run lost them (fenced); else a plain
  /// error.
  func ended(_ what: String, _ detail: String?) -> Diagnostic {
    if holdsLocks {
      return fenced(what, "its database session ended" + (detail.map { ": \($0)" } ?? ""))
    }
    return Diagnostic.error(
      "state.postgres", "the state database \(location) closed this session (\(what)); nothing more is done", subject: "state",
      hint: "what was done is in the journal; run the command again once the database answers")
  }

  static func describe(_ error: Error) -> String {
    if let psql = error as? PSQLError {
      if let message = psql.serverInfo?[.message] { return message }
      return "\(psql.code)"
    }
    return "\(error)"
  }

  // MARK: locks

  /// The two keys of a lock's advisory lock: the project's and the lock name's (stable 31-bit
  /// hashes, so every Drover computes the same ones).
  func keys(_ name: String) -> (Int32, Int32) { (Self.key("drover project " + project), Self.key("drover lock " + name)) }

  static func key(_ text: String) -> Int32 {
    let digest = ContentDigest.of(text).hex
    return Int32(truncatingIfNeeded: Int64(UInt32(digest.prefix(8), radix: 16) ?? 0) & 0x7fff_ffff)
  }

  public func acquireLock(name: String, holder: LockHolder, timeout: Double) throws -> (any SharedLock)? {
    // A session whose lease is over (frozen past it) is ended by the server: no new grant on it.
    guard !connection.isClosed else { throw ended("taking the lock of \(name)", nil) }
    let (k1, k2) = keys(name)
    guard held.withLock({ $0.insert(name).inserted }) else { return nil }
    var taken = false
    defer { if !taken { _ = held.withLock { $0.remove(name) } } }
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      let rows = try query("SELECT pg_try_advisory_lock(\(k1), \(k2))", "taking the lock of \(name)")
      if try rows.first?.decode(Bool.self) == true { break }
      guard Date() < deadline else { return nil }
      Thread.sleep(forTimeInterval: min(0.2, max(0.01, deadline.timeIntervalSinceNow)))
    }
    let started = holder.started.timeIntervalSince1970
    let token: Int64
    do {
      let rows = try query(
        """
        INSERT INTO drover_lock_holders (project, name, pid, host, command, started, backend_pid, token, lease, renewed)
        VALUES (\(project), \(name), \(Int64(holder.pid)), \(holder.host), \(holder.command), \(started), pg_backend_pid(),
          nextval('drover_fence_tokens'), \(lease), extract(epoch from clock_timestamp()))
        ON CONFLICT (project, name) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, command = EXCLUDED.command,
          started = EXCLUDED.started, backend_pid = EXCLUDED.backend_pid, token = EXCLUDED.token, lease = EXCLUDED.lease, renewed = EXCLUDED.renewed
        RETURNING token
        """, "recording the holder of \(name)")
      guard let granted = try rows.first?.decode(Int64?.self) else {
        throw Diagnostic.error("state.postgres", "the state database gave the lock of \(name) no fencing token", subject: "state")
      }
      token = granted
    } catch {
      // Never left holding a lock nobody is named for.
      _ = try? query("SELECT pg_advisory_unlock(\(k1), \(k2))", "releasing \(name)")
      throw error
    }
    taken = true
    tokens.withLock { $0[name] = token }
    return PostgresLock(state: self, name: name, keys: (k1, k2), token: token)
  }

  public func lockHolder(name: String) throws -> LockHolder? {
    // A holder row counts only while its session holds the advisory lock (`lockLease`): a killed
    // holder's row stays behind, its lock does not.
    if let lease = try lockLease(name: name) { return lease.holder }
    // Held by a session that wrote no holder row yet (between the lock and the row)?
    let held = try query("SELECT count(*) FROM pg_locks l WHERE \(unescaped: Self.advisoryLock(keys(name)))", "reading the lock of \(name)")
    if try (held.first?.decode(Int64.self) ?? 0) > 0 {
      return LockHolder(pid: 0, host: "a session of \(location)", command: "(starting)", started: Date())
    }
    return nil
  }

  func releaseLock(name: String, keys: (Int32, Int32)) {
    _ = tokens.withLock { $0.removeValue(forKey: name) }
    _ = try? query("DELETE FROM drover_lock_holders WHERE project = \(project) AND name = \(name) AND backend_pid = pg_backend_pid()", "releasing \(name)")
    _ = try? query("SELECT pg_advisory_unlock(\(keys.0), \(keys.1))", "releasing \(name)")
    _ = held.withLock { $0.remove(name) }
  }

  // MARK: leases and fencing

  /// The part of the lease kept in reserve: a check that ends this close to its end counts as
  /// too late (the two clocks may tick apart a little).
  var leaseMargin: Double { min(0.5, lease * 0.05) }

  public func checkFence(_ expected: [String: Int64], what: String) throws {
    guard !expected.isEmpty else { return }
    let left = leaseUntil.withLock { $0 } - Self.uptime() - leaseMargin
    guard left > 0 else {
      throw fenced(what, "its lease of \(Self.seconds(lease)) ran out \(Self.seconds(-left)) ago unrenewed (the database unreachable, or this process stopped)")
    }
    guard serial.lock(before: Date().addingTimeInterval(left)) else { throw fenced(what, "its session stayed busy until the lease ran out") }
    defer { serial.unlock() }
    let rows: [PostgresRow]
    do {
      // The proof renews the holder rows too: a holder that proves is a holder that lives.
      rows = try run(
        """
        UPDATE drover_lock_holders SET renewed = extract(epoch from clock_timestamp())
        WHERE project = \(project) AND backend_pid = pg_backend_pid() RETURNING name, token
        """, "proving this run still holds its locks", seconds: left)
    } catch {
      throw fenced(what, Diagnostic.line(of: error))
    }
    var current: [String: Int64] = [:]
    for row in rows {
      guard let (name, token) = try? row.decode((String, Int64?).self), let token else { continue }
      current[name] = token
    }
    for (name, token) in expected.sorted(by: { $0.key < $1.key }) where current[name] != token {
      throw fenced(what, "the lock of \(name) is not this session's any more (granted with token \(token), now \(current[name].map { String($0) } ?? "none"))")
    }
    guard Self.uptime() < leaseUntil.withLock({ $0 }) - leaseMargin else { throw fenced(what, "the proof came after the lease ran out") }
  }

  func fenced(_ what: String, _ why: String) -> Diagnostic {
    Diagnostic.error(
      "state.fenced", "stopped before \(what): this run no longer holds its lock in \(location) (\(why)); nothing more is done", subject: "state",
      hint: "another run may hold the lock now; what was done is journaled: run the command again once the database answers (it resumes)")
  }

  static func seconds(_ s: Double) -> String { s < 10 ? String(format: "%.1f s", s) : "\(Int(s)) s" }

  /// The condition that the `pg_locks` row `l` is the granted advisory lock of `keys` in this
  /// database (keys are integers: spliced, never text).
  static func advisoryLock(_ keys: (Int32, Int32)) -> String {
    """
    l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = \(Int64(UInt32(bitPattern: keys.0)))::oid AND l.objid = \(Int64(UInt32(bitPattern: keys.1)))::oid AND l.objsubid = 2
    """
  }

  /// The condition that the holder row `h`'s session holds the advisory lock of `keys` now.
  static func holdsLock(_ keys: (Int32, Int32)) -> String {
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = h.backend_pid AND \(advisoryLock(keys)))"
  }

  public func lockLease(name: String) throws -> LockLease? {
    let rows = try query(
      """
      SELECT h.pid, h.host, h.command, h.started, h.backend_pid::bigint, h.token, h.lease, extract(epoch from clock_timestamp()) - h.renewed,
        (SELECT extract(epoch from clock_timestamp() - a.state_change)::double precision FROM pg_stat_activity a
          WHERE a.pid = h.backend_pid AND a.state IS DISTINCT FROM 'idle')
      FROM drover_lock_holders h WHERE h.project = \(project) AND h.name = \(name) AND \(unescaped: Self.holdsLock(keys(name)))
      """, "reading the lease of \(name)")
    guard let row = rows.first else { return nil }
    let (pid, host, command, started, session, token, lease, ago, busy) = try row.decode(
      (Int64, String, String, Double, Int64, Int64?, Double?, Double?, Double?).self)
    var found = LockLease(
      holder: LockHolder(pid: Int32(truncatingIfNeeded: pid), host: host, command: command, started: Date(timeIntervalSince1970: started)),
      session: session, token: token, lease: lease, renewedAgo: ago)
    found.busyFor = busy
    return found
  }

  public func endExpiredHolder(name: String, session: Int64) throws -> Bool {
    let rows = try query(
      """
      SELECT pg_terminate_backend(h.backend_pid) FROM drover_lock_holders h
      WHERE h.project = \(project) AND h.name = \(name) AND h.backend_pid = \(session)
        AND (h.lease IS NULL OR h.renewed IS NULL OR (extract(epoch from clock_timestamp()) - h.renewed > h.lease
          AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.backend_pid AND a.state IS DISTINCT FROM 'idle'
            AND extract(epoch from clock_timestamp() - a.state_change) > h.lease)))
        AND \(unescaped: Self.holdsLock(keys(name)))
      """, "ending the expired holder of \(name)")
    return try rows.first?.decode(Bool.self) ?? false
  }

  // MARK: journal

  public func journalRecords(pool: String, after: Int) throws -> [JournalRecord] {
    let rows = try query(
      """
      SELECT seq, time, rollout, event, node, step, detail, mac, fence FROM drover_journal
      WHERE project = \(project) AND pool = \(pool) AND seq > \(Int64(after)) ORDER BY seq
      """,
      "reading the journal of pool \(pool)")
    return try rows.compactMap { row in
      let (seq, time, rollout, event, node, step, detail, mac, fence) = try row.decode(
        (Int64, Double, String, String, String?, String?, String?, String?, Int64?).self)
      // An unknown event is kept as a failed row would be: the journal's check refuses what it
      // cannot verify, never skips it.
      guard let kind = JournalRecord.Event(rawValue: event) else {
        throw Diagnostic.error(
          "state.journal-forged", "journal record \(seq) of pool \(pool) has an unknown event '\(Terminal.printable(String(event.prefix(40))))'; nothing in this journal is acted on",
          subject: "pool \(pool)", hint: "a newer Drover wrote it, or someone edited the journal")
      }
      var record = JournalRecord(seq: Int(seq), time: time, rollout: rollout, event: kind, node: node, step: step, detail: detail)
      record.mac = mac
      record.fence = fence
      return record
    }
  }

  public func appendJournal(pool: String, _ make: (Int, Double) -> JournalRecord) throws -> JournalRecord {
    // The record is sealed with its number, so the number is read first and written explicitly;
    // two writers (an apply and a `rollout pause`) that take the same one collide on the primary
    // key, and the loser numbers again (two round trips, no transaction).
    for _ in 0..<5 {
      let last = try query("SELECT coalesce(max(seq), 0) FROM drover_journal WHERE project = \(project) AND pool = \(pool)", "numbering the journal of \(pool)")
      let seq = Int(try last.first?.decode(Int64.self) ?? 0) + 1
      let record = make(seq, Date().timeIntervalSince1970)
      guard !([record.node, record.step, record.detail, record.rollout].contains { $0?.contains("\u{0}") == true }) else {
        throw Diagnostic.error("state.postgres", "a journal record of pool \(pool) holds a NUL byte, which PostgreSQL's text cannot", subject: "pool \(pool)")
      }
      do {
        _ = try query(
          """
          INSERT INTO drover_journal (project, pool, seq, time, rollout, event, node, step, detail, mac, fence)
          VALUES (\(project), \(pool), \(Int64(seq)), \(record.time), \(record.rollout), \(record.event.rawValue), \(record.node), \(record.step), \(record.detail), \(record.mac), \(record.fence))
          """, "appending to the journal of pool \(pool)")
        return record
      } catch let d as Diagnostic where d.code == "state.postgres-conflict" {
        continue
      }
    }
    throw Diagnostic.error("state.postgres", "the journal of pool \(pool) stayed contended for 5 attempts", subject: "pool \(pool)")
  }

  public func importJournal(pool: String, records: [JournalRecord]) throws {
    try transaction("the import of pool \(pool)") {
      _ = try run("SELECT pg_advisory_xact_lock(\(Self.key("drover journal " + project)), \(Self.key(pool)))", "locking the journal of \(pool)")
      let existing = try run("SELECT count(*) FROM drover_journal WHERE project = \(project) AND pool = \(pool)", "reading the journal of \(pool)")
      if try (existing.first?.decode(Int64.self) ?? 0) > 0 {
        throw Diagnostic.error(
          "state.migrate", "pool \(pool) already has a journal in \(location); nothing was copied for it", subject: "pool \(pool)",
          hint: "a journal is copied once; the database's is the pool's journal now")
      }
      for r in records {
        let detail = r.detail?.replacingOccurrences(of: "\u{0}", with: "")
        _ = try run(
          """
          INSERT INTO drover_journal (project, pool, seq, time, rollout, event, node, step, detail, mac, fence)
          VALUES (\(project), \(pool), \(Int64(r.seq)), \(r.time), \(r.rollout), \(r.event.rawValue), \(r.node), \(r.step), \(detail), \(r.mac), \(r.fence))
          """, "copying record \(r.seq) of pool \(pool)")
      }
    }
  }

  // MARK: heal ledger

  public func healLedger(pool: String, maxBytes: Int) throws -> [UInt8]? {
    // A row over the bound (not one Drover wrote) is never fetched: read as none, like a file —
    // every grace restarts, the safe direction — and replaced by the next pass.
    let rows = try query(
      "SELECT document FROM drover_heal_ledger WHERE project = \(project) AND pool = \(pool) AND octet_length(document) <= \(Int64(maxBytes))",
      "reading the heal ledger of pool \(pool)")
    return try rows.first.map { Array(try $0.decode(String.self).utf8) }
  }

  public func writeHealLedger(pool: String, document: [UInt8]) throws {
    let text = String(decoding: document, as: UTF8.self)
    _ = try query(
      """
      INSERT INTO drover_heal_ledger (project, pool, document, written) VALUES (\(project), \(pool), \(text), \(Date().timeIntervalSince1970))
      ON CONFLICT (project, pool) DO UPDATE SET document = EXCLUDED.document, written = EXCLUDED.written
      """, "writing the heal ledger of pool \(pool)")
  }

  public func journalPools() throws -> [String] {
    try query("SELECT DISTINCT pool FROM drover_journal WHERE project = \(project) ORDER BY pool", "listing the journals").map { try $0.decode(String.self) }
  }
}

/// A lock held on `PostgresState`'s session.
final class PostgresLock: SharedLock, @unchecked Sendable {
  let state: PostgresState
  let name: String
  let keys: (Int32, Int32)
  let token: Int64
  private let released = Mutex(false)

  init(state: PostgresState, name: String, keys: (Int32, Int32), token: Int64) {
    self.state = state
    self.name = name
    self.keys = keys
    self.token = token
  }

  func release() {
    guard released.withLock({ was in defer { was = true }; return !was }) else { return }
    state.releaseLock(name: name, keys: keys)
  }
}

/// A future's result, handed from the event loop to the waiting thread.
final class ResultBox<T: Sendable>: @unchecked Sendable {
  private let lock = NSLock()
  private var result: Result<T, Error>?
  func set(_ r: Result<T, Error>) { lock.withLock { if result == nil { result = r } } }
  func get() -> Result<T, Error>? { lock.withLock { result } }
}
