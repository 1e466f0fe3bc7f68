import DroverBasics
import DroverRollout
import Foundation

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
  /// Fault injection for tests: `DROVER_CRASH_AT=<event>[:<step>][#n]` kills the process with
  /// SIGKILL right after the n-th matching record is durable.
  private let crashAt: (pattern: String, count: Int)?
  private var crashSeen = 0

  public init(directory: String, pool: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    path = "\(directory)/\(pool).jsonl"
    if let spec = ProcessInfo.processInfo.environment["DROVER_CRASH_AT"], !spec.isEmpty {
      let parts = spec.split(separator: "#")
      crashAt = (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    } else {
      crashAt = nil
    }
    seq = records().last?.seq ?? 0
  }

  public func records() -> [JournalRecord] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(JournalRecord.self, from: Data($0)) }
  }

  /// Appends a record and makes it durable before returning.
  @discardableResult
  public func append(_ rollout: String, _ event: JournalRecord.Event, node: String? = nil, step: String? = nil, detail: String? = nil) throws -> JournalRecord {
    let record: JournalRecord = lock.withLock {
      seq += 1
      return JournalRecord(seq: seq, time: Date().timeIntervalSince1970, rollout: rollout, event: event, node: node, step: step, detail: detail)
    }
    var line = try JSONEncoder().encode(record)
    line.append(UInt8(ascii: "\n"))
    try lock.withLock {
      let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
      guard fd >= 0 else { throw Diagnostic.error("rollout.journal", "cannot open \(path): \(String(cString: strerror(errno)))") }
      defer { close(fd) }
      let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      guard written == line.count, fsync(fd) == 0 else {
        throw Diagnostic.error("rollout.journal", "cannot write \(path): \(String(cString: strerror(errno)))")
      }
      if let crashAt {
        let key = event.rawValue + (step.map { ":" + $0 } ?? "")
        if key == crashAt.pattern || (crashAt.pattern.hasSuffix(":*") && key.hasPrefix(crashAt.pattern.dropLast())) {
          crashSeen += 1
          if crashSeen == crashAt.count { kill(getpid(), SIGKILL) }
        }
      }
    }
    return record
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
        order.append(record.rollout)
      }
      states[record.rollout]?.apply(record)
    }
    return order.compactMap { states[$0] }
  }

  /// The rollout still in progress (running when the process died, or paused), if any.
  public func active() -> RolloutState? { rollouts().last { $0.isActive } }
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

  public init(pool: String, fromImage: String, toImage: String, schedule: [[String]], policy: RolloutPolicy, nodes: [RolloutNode]) {
    self.pool = pool
    self.fromImage = fromImage
    self.toImage = toImage
    self.schedule = schedule
    self.policy = policy
    self.nodes = nodes
  }
}
