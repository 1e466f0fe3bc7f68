import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Synchronization

/// How a rollout ended (for this run).
public struct RolloutOutcome: Sendable {
  public var state: RolloutState
  public var interrupted: Bool
  public var summary: [String]
}

/// Rolls a pool to a new image: canary, then waves; per node cordon → drain → replace → health →
/// uncordon; every step journaled before and after; the budget counted once per node across the
/// whole rollout; rollback (or pause) when it is exceeded.
///
/// Each node's procedure re-reads the world before acting (which domains of that index exist, on
/// which image), so running it again after a crash at any step finishes the job without a duplicate
/// domain, an orphan overlay or a second count against the budget.
public final class RolloutRunner: @unchecked Sendable {
  public struct Hooks: Sendable {
    public var prober: any HealthProbing
    public var drainer: any Draining
    /// Gives a node its disk (golden image overlay) before it is defined.
    public var prepare: @Sendable (NodeDefinition, String) throws -> NodeDefinition
    /// The serial console log of a node, for console health checks.
    public var consoleLog: @Sendable (String) -> String?
    public var shouldStop: @Sendable () -> Bool
    public var onEvent: @Sendable (String) -> Void
    public var sleep: @Sendable (Double) -> Void

    public init(
      prober: any HealthProbing = HealthChecker(), drainer: any Draining,
      prepare: @escaping @Sendable (NodeDefinition, String) throws -> NodeDefinition = { n, _ in n },
      consoleLog: @escaping @Sendable (String) -> String? = { _ in nil }, shouldStop: @escaping @Sendable () -> Bool = { false },
      onEvent: @escaping @Sendable (String) -> Void = { _ in }, sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }
    ) {
      self.prober = prober
      self.drainer = drainer
      self.prepare = prepare
      self.consoleLog = consoleLog
      self.shouldStop = shouldStop
      self.onEvent = onEvent
      self.sleep = sleep
    }
  }

  let pool: PoolSpec
  let project: String
  let backends: [String: any HostBackend]
  let journal: RolloutJournal
  let hooks: Hooks

  public init(pool: PoolSpec, project: String, backends: [String: any HostBackend], journal: RolloutJournal, hooks: Hooks) {
    self.pool = pool
    self.project = project
    self.backends = backends
    self.journal = journal
    self.hooks = hooks
  }

  /// Starts a rollout of `actions` (the pool's replace actions), or resumes the active one.
  public func run(actions: [PlannedAction], imageDigest: String) throws -> RolloutOutcome {
    var state: RolloutState
    if let active = journal.active() {
      state = active
      hooks.onEvent("resuming rollout \(state.id) of pool \(pool.name): \(state.fromImage) → \(state.toImage)")
      if state.status == .paused { try journal.append(state.id, .resumed) }
    } else {
      let keys = actions.compactMap { $0.after?.ownership.index }.sorted().map { "\(pool.name)-\($0)" }
      let policy = RolloutPolicy.resolve(pool.upgrade, budget: pool.errorBudget, nodes: keys.count, replicas: pool.replicas)
      let from = Set(actions.compactMap { $0.before?.image }).sorted().joined(separator: ",")
      let start = RolloutStart(pool: pool.name, fromImage: from, toImage: pool.image.description, schedule: policy.schedule(keys), policy: policy)
      let id = "\(pool.name)-\(Int(Date().timeIntervalSince1970 * 1000))"
      try journal.append(id, .rolloutStarted, detail: String(decoding: try JSONEncoder().encode(start), as: UTF8.self))
      state = journal.active()!
      hooks.onEvent("rollout \(id) of pool \(pool.name): \(from) → \(pool.image), waves \(state.schedule.map { $0.joined(separator: ",") }.joined(separator: " | "))")
    }
    var soaked: Set<Int> = []
    while true {
      state = journal.rollouts().last { $0.id == state.id } ?? state
      if hooks.shouldStop() {
        try journal.append(state.id, .paused, detail: "interrupted")
        return outcome(state, interrupted: true)
      }
      switch nextRolloutStep(state, soaked: soaked) {
      case .done:
        try journal.append(state.id, .completed)
        state.apply(JournalRecord(seq: 0, time: Date().timeIntervalSince1970, rollout: state.id, event: .completed))
        return outcome(state, interrupted: false)
      case .pause(let reason):
        try journal.append(state.id, .paused, detail: reason)
        hooks.onEvent("rollout paused: \(reason)")
        state.apply(JournalRecord(seq: 0, time: 0, rollout: state.id, event: .paused))
        return outcome(state, interrupted: false)
      case .soak(let ms, let wave):
        hooks.onEvent("soaking \(Double(ms) / 1000)s before wave \(wave)")
        hooks.sleep(Double(ms) / 1000)
        soaked.insert(wave)
      case .replace(let wave, let nodes):
        let batch = Array(nodes.prefix(state.policy.concurrency))
        hooks.onEvent("\(wave == 0 && state.policy.canary > 0 ? "canary" : "wave \(wave)"): replacing \(batch.joined(separator: ", "))")
        let current = state
        BlockingFanOut.forEach(batch.count, width: batch.count) { i in
          let key = batch[i]
          do {
            if let reason = try self.replaceNode(key, image: current.toImage, digest: imageDigest, state: current, rollback: false) {
              if current.failed[key] == nil { try self.journal.append(current.id, .nodeFailed, node: key, detail: reason) }
              self.hooks.onEvent("\(key): FAILED: \(reason)")
            } else {
              try self.journal.append(current.id, .nodeDone, node: key)
              self.hooks.onEvent("\(key): replaced and healthy on \(current.toImage)")
            }
          } catch {
            let message = (error as? DiagnosticConvertible)?.diagnostics.first?.message ?? "\(error)"
            _ = try? self.journal.append(current.id, .nodeFailed, node: key, detail: message)
            self.hooks.onEvent("\(key): FAILED: \(message)")
          }
        }
      case .rollback(let reason, let nodes):
        if state.status != .rollingBack {
          try journal.append(state.id, .rollbackStarted, detail: reason)
          hooks.onEvent("rolling back: \(reason)")
        }
        guard let key = nodes.first else {
          try journal.append(state.id, .rolledBack, detail: reason)
          state = journal.rollouts().last { $0.id == state.id } ?? state
          return outcome(state, interrupted: false, reason: reason)
        }
        let previous = state.fromImage.split(separator: ",").first.map(String.init) ?? state.fromImage
        let reasonBack = try replaceNode(key, image: previous, digest: "", state: state, rollback: true)
        try journal.append(state.id, .nodeRolledBack, node: key, detail: reasonBack)
        hooks.onEvent("\(key): rolled back to \(previous)\(reasonBack.map { " (but: \($0))" } ?? "")")
      }
    }
  }

  func outcome(_ state: RolloutState, interrupted: Bool, reason: String? = nil) -> RolloutOutcome {
    var summary = ["rollout \(state.id) of pool \(state.pool): \(state.status.rawValue)"]
    if let reason { summary.append("reason: \(reason)") }
    for (node, why) in state.failed.sorted(by: { $0.key < $1.key }) { summary.append("failed \(node): \(why)") }
    if !state.rolledBack.isEmpty { summary.append("rolled back to \(state.fromImage): \(state.rolledBack.sorted().joined(separator: ", "))") }
    return RolloutOutcome(state: state, interrupted: interrupted, summary: summary)
  }

  /// The owned domains of one node index, on every host of the pool.
  func domains(index: Int) throws -> [(host: String, domain: ObservedDomain, ownership: NodeOwnership)] {
    var result: [(String, ObservedDomain, NodeOwnership)] = []
    for uri in Set(pool.hosts).sorted() {
      guard let backend = backends[uri] else { continue }
      for d in try backend.observe().domains {
        if let o = d.ownership, o.project == project, o.pool == pool.name, o.index == index, o.node == d.name { result.append((uri, d, o)) }
      }
    }
    return result
  }

  func endpoint(_ host: String, _ o: NodeOwnership) -> NodeEndpoint {
    var ep = NodeEndpoint(name: o.node, host: host, pool: pool.name, image: o.image, consoleLog: hooks.consoleLog(o.node))
    if let resolver = backends[host] as? AddressResolving {
      let node = o.node
      nonisolated(unsafe) let r = resolver
      ep.resolveAddress = { r.address(of: node) }
      ep.address = pool.network == nil ? nil : r.address(of: node)
    }
    return ep
  }

  func step<T>(_ state: RolloutState, _ key: String, _ name: String, _ body: () throws -> T) throws -> T {
    try journal.append(state.id, .stepStarted, node: key, step: name)
    let value = try body()
    try journal.append(state.id, .stepDone, node: key, step: name)
    return value
  }

  /// Brings node `key` onto `image` by the safe steps; returns why it failed, or nil.
  func replaceNode(_ key: String, image: String, digest: String, state: RolloutState, rollback: Bool) throws -> String? {
    guard let index = Int(key.split(separator: "-").last ?? "") else { return "bad node key \(key)" }
    let base = key
    let found = try domains(index: index)
    let onTarget = found.first { $0.ownership.image == image && (digest.isEmpty || $0.ownership.digest.isEmpty || $0.ownership.digest == digest) }
    let old = found.first { $0.ownership.image != image || (!digest.isEmpty && !$0.ownership.digest.isEmpty && $0.ownership.digest != digest) }
    let host = old?.host ?? onTarget?.host ?? pool.hosts[(index - 1) % pool.hosts.count]
    guard let backend = backends[host] else { return "no connection to \(host)" }
    let surge = state.policy.usesSurge
    let generation = (found.map(\.ownership.generation).max() ?? 0) + 1
    let drainSeconds = pool.drain.timeout.seconds

    if let old {
      let ep = endpoint(old.host, old.ownership)
      try step(state, key, "cordon") { try hooks.drainer.cordon(ep) }
      let drained = try step(state, key, "drain") { try hooks.drainer.drain(ep, timeout: drainSeconds) }
      if !drained && pool.drain.onTimeout == .fail {
        if pool.drain.onFailure == .uncordon { try? hooks.drainer.uncordon(ep) }
        return "drain of \(old.domain.name) timed out after \(pool.drain.timeout) (on_timeout: fail)"
      }
    }
    var target = onTarget
    func create(named name: String) throws {
      var o = desiredOwnership(pool, index: index, digest: digest, generation: generation, project: project)
      o.node = name
      o.image = image
      if rollback, let previous = old?.ownership ?? found.first?.ownership, previous.image == image { o.digest = previous.digest }
      if rollback, let t = ImageRef(parsing: image) { o.image = t.description }
      let prepared = try hooks.prepare(NodeDefinition(ownership: o), host)
      try backend.create(prepared)
      target = try domains(index: index).first { $0.domain.name == name }
    }
    if surge {
      if target == nil {
        // The new node gets the other name of the index, so old and new can coexist.
        let name = old?.domain.name == base ? "\(base)-g\(generation)" : base
        try step(state, key, "create") { try create(named: name) }
      }
      guard let t = target else { return "the new node did not appear" }
      if let reason = try step(state, key, "health", { try health(t) }) {
        try step(state, key, "remove-failed") { try backend.delete(node: t.domain.name, uuid: t.domain.uuid) }
        if let old, pool.drain.onFailure == .uncordon { try? hooks.drainer.uncordon(endpoint(old.host, old.ownership)) }
        return reason
      }
      if let old { try step(state, key, "remove-old") { try backend.delete(node: old.domain.name, uuid: old.domain.uuid) } }
    } else {
      if let old { try step(state, key, "remove-old") { try backend.delete(node: old.domain.name, uuid: old.domain.uuid) } }
      if target == nil { try step(state, key, "create") { try create(named: base) } }
      guard let t = target else { return "the new node did not appear" }
      if let reason = try step(state, key, "health", { try health(t) }) { return reason }
    }
    if let t = target { try step(state, key, "uncordon") { try hooks.drainer.uncordon(endpoint(t.host, t.ownership)) } }
    return nil
  }

  func health(_ t: (host: String, domain: ObservedDomain, ownership: NodeOwnership)) throws -> String? {
    let deadline = Date().addingTimeInterval(pool.upgrade.healthTimeout.seconds)
    return hooks.prober.unhealthyReason(endpoint(t.host, t.ownership), checks: pool.health, deadline: deadline, shouldStop: hooks.shouldStop)
  }
}
