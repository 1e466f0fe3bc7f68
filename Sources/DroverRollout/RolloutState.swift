import Foundation

/// One record of a rollout journal (append-only; the state is the fold of the records).
public struct JournalRecord: Sendable, Hashable, Codable {
  public enum Event: String, Sendable, Codable {
    case rolloutStarted = "rollout-started"
    case stepStarted = "step-started"
    case stepDone = "step-done"
    case nodeDone = "node-done"
    case nodeFailed = "node-failed"
    case waveDone = "wave-done"
    case pauseRequested = "pause-requested"
    case abortRequested = "abort-requested"
    case paused
    case resumed
    case rollbackStarted = "rollback-started"
    case rolledBack = "rolled-back"
    case nodeRolledBack = "node-rolled-back"
    case completed
    case failed
    /// One analysis measurement (#43): `detail` is the `GateMeasurement`, as JSON.
    case measured
    /// A wave's analysis ended: `step` is the wave's number, `detail` `passed: …` or `failed: …`.
    case analyzed
    /// A batch held back by a schedule gate (#44): `detail` is the `Deferral`, as JSON.
    case deferred
    /// That wait ended: `detail` is the `Deferral` with its outcome and how long it waited.
    case deferralEnded = "deferral-ended"
  }

  public var seq: Int
  public var time: Double
  public var rollout: String
  public var event: Event
  public var node: String?
  public var step: String?
  public var detail: String?
  /// The record's seal (`JournalSeal`, hex); nil in records an older Drover wrote.
  public var mac: String?
  /// The fencing token of the lock this record was written under (#41: a shared state's grant;
  /// nil with a local state folder, whose kernel lock no other machine can take).
  public var fence: Int64? = nil

  public init(seq: Int, time: Double, rollout: String, event: Event, node: String? = nil, step: String? = nil, detail: String? = nil) {
    self.seq = seq
    self.time = time
    self.rollout = rollout
    self.event = event
    self.node = node
    self.step = step
    self.detail = detail
  }
}

/// Why a rollout runs: an upgrade (`apply`: the spec changed) or a heal (`drover heal`: nodes
/// died, rebuilt from their own records).
public enum RolloutKind: String, Sendable, Codable, Hashable { case upgrade, heal }

/// A rollout's state, folded from its journal records.
public struct RolloutState: Sendable, Hashable, Codable {
  public enum Status: String, Sendable, Codable { case running, paused, rollingBack = "rolling-back", completed, rolledBack = "rolled-back", failed }

  public var id: String
  public var pool: String
  public var fromImage: String
  public var toImage: String
  public var schedule: [[String]]
  public var policy: RolloutPolicy
  public var kind: RolloutKind = .upgrade
  /// Each node's planned replacement (old UUID, from, to), by key.
  public var nodes: [String: RolloutNode] = [:]
  public var status: Status = .running
  /// Node (by index name, e.g. web-2) → done on the new image.
  public var done: Set<String> = []
  /// Nodes counted against the budget (each once, whatever the number of retries or restarts).
  public var failed: [String: String] = [:]
  public var rolledBack: Set<String> = []
  /// Nodes any step was started on: a crash can leave one half-replaced, so a rollback covers it.
  public var touched: Set<String> = []
  public var pauseRequested = false
  public var abortRequested = false
  /// The last step journaled: where a crashed or stopped rollout was.
  public var lastStep: LastStep?
  public var started: Double = 0
  public var ended: Double?
  /// Nodes an operator had taken out of service before the rollout, by key, with what to give
  /// back (see `OperatorHold`); the first record per node counts.
  public var holds: [String: OperatorHold] = [:]
  /// Waves whose analysis ended (#43), with how: `passed: …` or `failed: …`.
  public var analyzed: [Int: String] = [:]
  /// Every analysis measurement, oldest first.
  public var measurements: [GateMeasurement] = []
  /// Every wait a schedule gate imposed (#44), oldest first; the last one is open while it waits.
  public var deferrals: [Deferral] = []
  /// Why it last paused, as journaled ("interrupted", "maintenance window: …").
  public var pauseReason: String?
  /// Seconds each node took from its first step to done (the window's prediction of the next).
  public var nodeSeconds: [String: Double] = [:]
  /// Nodes whose rollback did not bring them back as they were, with why.
  public var rollbackFailures: [String: String] = [:]
  /// Whether it ended as asked: completed, or undone (`drover rollout undo`) with every node back.
  public var endedAsAsked: Bool { status == .completed || (undone && status == .rolledBack && rollbackFailures.isEmpty) }
  /// Rolled back by `drover rollout undo` after it completed (#45): its marks were cleared then.
  public var undone = false
  /// When each node's first step began.
  var nodeBegan: [String: Double] = [:]

  public struct LastStep: Sendable, Hashable, Codable {
    public var node: String
    public var step: String
    public var finished: Bool
    init(_ node: String, _ step: String, _ finished: Bool) {
      self.node = node
      self.step = step
      self.finished = finished
    }
  }

  public init(
    id: String, pool: String, fromImage: String, toImage: String, schedule: [[String]], policy: RolloutPolicy, nodes: [RolloutNode] = []
  ) {
    self.nodes = Dictionary(nodes.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
    self.id = id
    self.pool = pool
    self.fromImage = fromImage
    self.toImage = toImage
    self.schedule = schedule
    self.policy = policy
  }

  /// The wait under way (journaled as begun, not ended), if any.
  public var waiting: Deferral? { deferrals.last.flatMap { $0.outcome == nil ? $0 : nil } }

  public var isActive: Bool { status == .running || status == .paused || status == .rollingBack }
  public var budgetExceeded: Bool { policy.budgetExceeded(failures: failed.count) }

  /// Applies one record. Idempotent for repeated node-failed records: a node counts once.
  public mutating func apply(_ r: JournalRecord) {
    switch r.event {
    case .rolloutStarted: started = r.time
    case .stepStarted:
      lastStep = LastStep(r.node ?? "", r.step ?? "", false)
      if let n = r.node {
        touched.insert(n)
        if nodeBegan[n] == nil { nodeBegan[n] = r.time }
      }
    case .stepDone:
      lastStep = LastStep(r.node ?? "", r.step ?? "", true)
      if r.step == OperatorHold.journalStep, let n = r.node, holds[n] == nil, let hold = r.detail.flatMap(OperatorHold.init(journalText:)) { holds[n] = hold }
    case .nodeDone:
      if let n = r.node {
        done.insert(n)
        if let began = nodeBegan[n], nodeSeconds[n] == nil, r.time >= began { nodeSeconds[n] = r.time - began }
      }
    case .nodeFailed: if let n = r.node, failed[n] == nil { failed[n] = r.detail ?? "failed" }
    case .waveDone: break
    case .pauseRequested: pauseRequested = true
    case .abortRequested: abortRequested = true
    case .paused:
      status = .paused
      pauseRequested = false
      pauseReason = r.detail
    case .resumed: if status == .paused { status = .running }
    case .rollbackStarted:
      // `drover rollout undo` rolls a completed rollout back from its kept nodes (#45).
      if status == .completed {
        undone = true
        ended = nil
      }
      status = .rollingBack
    case .nodeRolledBack:
      if let n = r.node {
        rolledBack.insert(n)
        if let why = r.detail { rollbackFailures[n] = why }
      }
    case .rolledBack:
      status = .rolledBack
      ended = r.time
    case .completed:
      status = .completed
      ended = r.time
    case .failed:
      status = .failed
      ended = r.time
    case .measured:
      if let m = r.detail.flatMap(GateMeasurement.init(journalText:)) { measurements.append(m) }
    case .analyzed:
      if let wave = r.step.flatMap({ Int($0) }), analyzed[wave] == nil { analyzed[wave] = r.detail ?? "passed" }
    case .deferred:
      if let d = r.detail.flatMap(Deferral.init(journalText:)) { deferrals.append(d) }
    case .deferralEnded:
      if let d = r.detail.flatMap(Deferral.init(journalText:)), let i = deferrals.lastIndex(where: { $0.kind == d.kind && $0.outcome == nil }) {
        deferrals[i] = d
      }
    }
  }
}
