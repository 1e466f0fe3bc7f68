import DroverBasics
import DroverRollout
import Foundation
import Synchronization

/// An append-only, fsynced journal of rollout steps, one JSON record per line, per pool.
///
/// Every step is written before and after it runs, and each append is `fsync`ed before the step
/// goes on, so after `kill -9` at any point the journal says exactly which steps finished. A torn
/// last line (killed mid-write) is ignored on reading. The state of a rollout is the fold of its
/// records (`RolloutState.apply`); nothing else is stored.
public final class RolloutJournal: @unchecked Sendable {
  public let path: String
  private let lock = NSLock()
  private var seq = 0
  /// What was wrong with the file when it was opened (a torn last line after `kill -9` mid-write,
  /// or lines that are not records), already set aside into `damagedPath`; nil when it was sound.
  public private(set) var damage: String?
  public private(set) var damagedPath: String?
  /// Fault injection for tests: `DROVER_CRASH_AT=<event>[:<step>][#n]` kills the process with
  /// SIGKILL right after the n-th matching record is durable.
  private let crashAt: (pattern: String, count: Int)?
  private var crashSeen = 0
  /// Fault injection in-process (runner tests on a fake host): consulted before every append and
  /// once each record is durable. Set before the journal is used.
  public var faults: (any JournalFaults)?
  /// The fencing token of the pool lock this run holds (#41), written (sealed) into every record
  /// it appends: the journal says under which grant each step was taken. Set before use.
  public var fence: Int64?
  /// The run's fence: once it is lost, nothing more is appended (another run may own the journal).
  public var fenced: Fence?
  /// The clock records are stamped with: the run's (a test's injected one, so the durations a
  /// maintenance window predicts from are on the same clock it decides by). Set before use.
  public var now: @Sendable () -> Double = { Date().timeIntervalSince1970 }

  /// The shared backend the journal lives in (rows of a database), or nil: the file `path`.
  let shared: (any SharedStateBackend)?
  let pool: String
  /// Why the last read of a shared journal failed (a read that fails is never "no rollout").
  private let readFailure = Mutex<String?>(nil)
  /// The shared journal read so far: each read fetches only the records numbered after it (the
  /// runner reads the journal before every decision; a journal of years is not fetched each time).
  private let cache = Mutex<[JournalRecord]>([])

  /// The project's key holder: every record appended is sealed with it, every record read is
  /// checked against it (`JournalIntegrity`). Without a key, a sealed journal is not acted on and
  /// nothing can be appended.
  let keyring: Keyring?
  /// The digest of the legacy prefix (records an older Drover wrote unsealed) every new record binds.
  private let prefix = Mutex<String>("")

  /// - Parameter state: where the journal is; `StateStore.local` is the file in `directory`
  ///   (`drover state migrate` reads the local journal it copies so).
  public init(directory: String, pool: String, keyring: Keyring?, state: StateStore) throws {
    self.pool = pool
    self.keyring = keyring
    if let spec = ProcessInfo.processInfo.environment["DROVER_CRASH_AT"], !spec.isEmpty {
      let parts = spec.split(separator: "#")
      crashAt = (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    } else {
      crashAt = nil
    }
    if let shared = try state.backend() {
      self.shared = shared
      path = "\(shared.location) (journal of pool \(pool))"
      // Read once now: a database that cannot be read is an error here, before anything acts.
      cache.withLock { $0 = [] }
      let first = try shared.journalRecords(pool: pool, after: 0)
      cache.withLock { $0 = first }
      _ = checked(first)
      return
    }
    shared = nil
    // The state folder and its journal folder: real directories of this user nobody else writes.
    try StateFile.ownDirectory((directory as NSString).deletingLastPathComponent)
    try StateFile.ownDirectory(directory)
    path = "\(directory)/\(pool).jsonl"
    try repair()
    seq = records().last?.seq ?? 0
  }

  var seal: JournalSeal? { keyring?.key.map { JournalSeal($0) } }

  /// The records if every one may be acted on, else none (and why, for `checkedRollouts`).
  private func checked(_ records: [JournalRecord]) -> [JournalRecord] {
    switch JournalIntegrity.check(records, seal: seal, project: keyring?.project ?? "", pool: pool) {
    case .success(let good):
      prefix.withLock { $0 = good.prefix }
      return good.records
    case .failure(let refusal):
      readFailure.withLock { $0 = refusal.message }
      refused.withLock { $0 = refusal }
      return []
    }
  }

  /// The refusal of the last read, whole (its code and hint), when the journal did not verify.
  private let refused = Mutex<Diagnostic?>(nil)

  /// The largest local journal read (a journal of years is a few MiB).
  static let maxBytes = 256 << 20

  /// Why the last read of a shared journal failed, if it did.
  var lastReadFailure: String? { readFailure.withLock { $0 } }

  /// Every rollout, or an error when the journal could not be read (a shared journal whose
  /// database did not answer): a failed read is never taken for "no rollout".
  public func checkedRollouts() throws -> [RolloutState] {
    let rollouts = self.rollouts()
    if let refusal = refused.withLock({ $0 }) { throw refusal }
    if let failure = lastReadFailure {
      throw Diagnostic.error(
        "state.journal", "cannot read the journal of pool \(pool): \(failure)", subject: "pool \(pool)",
        hint: "what was done is journaled; run the command again once the state database answers")
    }
    return rollouts
  }

  /// Sets aside every line that is not a record (a torn tail, garbage) into a file beside the
  /// journal, under the journal's file lock, and keeps the good records in order. Why not just
  /// skip them on reading: the next append would glue itself to a torn line and be lost too.
  func repair() throws {
    try withFileLock {
      guard case .success(let read?) = StateFile.read(path, maxBytes: Self.maxBytes, tooLarge: "over 256 MiB"), !read.bytes.isEmpty else { return }
      let data = Data(read.bytes)
      var good = Data(), bad = Data()
      var badLines = 0
      let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
      for (i, line) in lines.enumerated() {
        let last = i == lines.count - 1
        if last && line.isEmpty { continue }
        if !last, (try? JSONDecoder().decode(JournalRecord.self, from: Data(line))) != nil {
          good.append(contentsOf: line)
          good.append(UInt8(ascii: "\n"))
        } else {
          bad.append(contentsOf: line)
          bad.append(UInt8(ascii: "\n"))
          badLines += 1
        }
      }
      guard badLines > 0 else { return }
      // Both written to new files and renamed into place (never through a planted link); what
      // is set aside is as private as the journal.
      let aside = "\(path).damaged-\(Int(Date().timeIntervalSince1970 * 1000))"
      if let problem = StateFile.replace(aside, with: [UInt8](bad), mode: 0o600) ?? StateFile.replace(path, with: [UInt8](good), mode: 0o600) {
        throw Diagnostic.error("rollout.journal", "cannot repair \(path): \(problem.reason)")
      }
      damage = "\(badLines) damaged line\(badLines == 1 ? "" : "s") (\(bad.count) bytes) set aside from \(path) into \(aside)"
      damagedPath = aside
    }
  }

  /// Runs `body` holding an exclusive `flock` on the journal's lock file (other processes too:
  /// `rollout pause` appends while an apply runs).
  private func withFileLock<T>(_ body: () throws -> T) throws -> T {
    let fd = StateFile.openPrivate(path + ".lock", O_RDWR | O_CREAT)
    guard fd >= 0 else { throw Diagnostic.error("rollout.journal", "cannot open \(path).lock: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    flock(fd, LOCK_EX)
    defer { flock(fd, LOCK_UN) }
    return try body()
  }

  /// The sequence number of the last record in the file, from its tail only (another process may
  /// have appended since this one last wrote).
  func lastSeq() -> Int {
    let fd = StateFile.openPrivate(path, O_RDONLY | O_NONBLOCK)
    guard fd >= 0 else { return 0 }
    let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    let size = (try? handle.seekToEnd()) ?? 0
    try? handle.seek(toOffset: size > 65_536 ? size - 65_536 : 0)
    let tail = (try? handle.readToEnd()) ?? Data()
    for line in tail.split(separator: UInt8(ascii: "\n")).reversed() {
      if let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(line)) { return record.seq }
    }
    return 0
  }

  public func records() -> [JournalRecord] {
    if let shared {
      do {
        let after = cache.withLock { $0.last?.seq ?? 0 }
        let new = try shared.journalRecords(pool: pool, after: after)
        readFailure.withLock { $0 = nil }
        refused.withLock { $0 = nil }
        // Every record is checked in full each time (a row edited earlier in the journal is
        // never taken on trust because it was read before): one HMAC per record.
        let all = cache.withLock { c in
          c += new.filter { $0.seq > (c.last?.seq ?? 0) }
          return c
        }
        return checked(all)
      } catch {
        readFailure.withLock { $0 = Diagnostic.line(of: error) }
        return []
      }
    }
    refused.withLock { $0 = nil }
    readFailure.withLock { $0 = nil }
    let data: Data
    switch StateFile.read(path, maxBytes: Self.maxBytes, tooLarge: "over 256 MiB") {
    case .success(nil): return []
    case .success(let read?): data = Data(read.bytes)
    case .failure(let problem):
      // A link or a device planted in the journal's place is never read, and never "no rollout".
      readFailure.withLock { $0 = "\(path): \(problem.reason)" }
      return []
    }
    return checked(data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(JournalRecord.self, from: Data($0)) })
  }

  /// The record to append, NUL bytes removed (PostgreSQL's text holds none; the seal must cover
  /// what is stored) and sealed; refused without the project's key.
  private func sealed(_ draft: JournalRecord) throws -> JournalRecord {
    guard let seal else {
      throw Diagnostic.error(
        "records.no-key", "this machine has no key for project \(keyring?.project ?? "?"): the journal of pool \(pool) cannot be written",
        subject: "pool \(pool)", hint: "import the key (drover key import, or DROVER_PROJECT_KEY)")
    }
    var record = draft
    func clean(_ t: String?) -> String? { t.map { $0.replacingOccurrences(of: "\u{0}", with: "") } }
    record.node = clean(record.node)
    record.step = clean(record.step)
    record.detail = clean(record.detail)
    return JournalIntegrity.seal(record, with: seal, pool: pool, prefix: prefix.withLock { $0 })
  }

  /// Appends a record and makes it durable before returning. One lock covers numbering and
  /// writing, so records reach the file in sequence order.
  @discardableResult
  public func append(_ rollout: String, _ event: JournalRecord.Event, node: String? = nil, step: String? = nil, detail: String? = nil) throws -> JournalRecord {
    try faults?.beforeAppend()
    if let fenced, fenced.isLost { try fenced.check("journaling \(event.rawValue)") }
    if let shared {
      return try lock.withLock {
        _ = try sealed(JournalRecord(seq: 0, time: 0, rollout: rollout, event: event))  // no key: refused before the database is touched
        let fence = self.fence
        let record = try shared.appendJournal(pool: pool) { seq, time in
          var r = JournalRecord(seq: seq, time: time, rollout: rollout, event: event, node: node, step: step, detail: detail)
          r.fence = fence
          return (try? self.sealed(r)) ?? r
        }
        crashIfAsked(event: event, step: step)
        try faults?.afterDurable(record)
        return record
      }
    }
    return try lock.withLock {
      try withFileLock {
        seq = max(seq, lastSeq()) + 1
        let record = try sealed(
          JournalRecord(seq: seq, time: now(), rollout: rollout, event: event, node: node, step: step, detail: detail))
        var line = try JSONEncoder().encode(record)
        line.append(UInt8(ascii: "\n"))
        let fd = StateFile.openPrivate(path, O_RDWR | O_APPEND | O_CREAT)
        guard fd >= 0 else { throw Diagnostic.error("rollout.journal", "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // A short write earlier (a full disk) may have left a torn line: start on a line of our own.
        let size = lseek(fd, 0, SEEK_END)
        var last: UInt8 = 0x0A
        if size > 0 { _ = pread(fd, &last, 1, size - 1) }
        if last != 0x0A { line.insert(0x0A, at: 0) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
          throw Diagnostic.error("rollout.journal", "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        crashIfAsked(event: event, step: step)
        try faults?.afterDurable(record)
        return record
      }
    }
  }

  /// `DROVER_CRASH_AT`: SIGKILL right after the n-th matching record is durable.
  private func crashIfAsked(event: JournalRecord.Event, step: String?) {
    guard let crashAt else { return }
    let key = event.rawValue + (step.map { ":" + $0 } ?? "")
    if key == crashAt.pattern || (crashAt.pattern.hasSuffix(":*") && key.hasPrefix(crashAt.pattern.dropLast())) {
      crashSeen += 1
      if crashSeen == crashAt.count { kill(getpid(), SIGKILL) }
    }
  }

  /// Every rollout in the journal, oldest first, folded from its records.
  public func rollouts() -> [RolloutState] {
    var states: [String: RolloutState] = [:]
    var order: [String] = []
    for record in records() {
      if record.event == .rolloutStarted, let detail = record.detail, let data = detail.data(using: .utf8),
        let start = try? JSONDecoder().decode(RolloutStart.self, from: data)
      {
        states[record.rollout] = RolloutState(
          id: record.rollout, pool: start.pool, fromImage: start.fromImage, toImage: start.toImage, schedule: start.schedule,
          policy: start.policy, nodes: start.nodes ?? [])
        states[record.rollout]?.kind = start.kind ?? .upgrade
        order.append(record.rollout)
      }
      states[record.rollout]?.apply(record)
    }
    return order.compactMap { states[$0] }
  }

  /// The rollout still in progress (running when the process died, or paused), if any; an
  /// error when the journal could not be read or did not verify (never "no rollout").
  public func active() throws -> RolloutState? { try checkedRollouts().last { $0.isActive } }
}

/// What a rollout-started record holds (its detail, as JSON).
public struct RolloutStart: Codable, Sendable {
  public var pool: String
  public var fromImage: String
  public var toImage: String
  public var schedule: [[String]]
  public var policy: RolloutPolicy
  /// Each node's planned replacement (absent in journals written before it existed: such a
  /// rollout cannot be resumed, only aborted).
  public var nodes: [RolloutNode]?
  /// Absent before heals existed: an upgrade.
  public var kind: RolloutKind?

  public init(
    pool: String, fromImage: String, toImage: String, schedule: [[String]], policy: RolloutPolicy, nodes: [RolloutNode], kind: RolloutKind = .upgrade
  ) {
    self.kind = kind
    self.pool = pool
    self.fromImage = fromImage
    self.toImage = toImage
    self.schedule = schedule
    self.policy = policy
    self.nodes = nodes
  }
}

/// A simulated process death for in-process tests: `beforeAppend` throws once the "process" is
/// gone (nothing more is written), `afterDurable` may end it right after a record is durable —
/// what `DROVER_CRASH_AT` does with SIGKILL, without leaving the test process.
public protocol JournalFaults: Sendable {
  func beforeAppend() throws
  func afterDurable(_ record: JournalRecord) throws
}
