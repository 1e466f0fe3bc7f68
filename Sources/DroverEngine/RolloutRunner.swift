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
  /// Domains this run really created and removed (a canary created and then rolled back counts).
  public var created = 0
  public var removed = 0
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
    public var prepare: @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition
    /// The serial console log of a node, for console health checks.
    public var consoleLog: @Sendable (String) -> String?
    public var shouldStop: @Sendable () -> Bool
    public var onEvent: @Sendable (RolloutEvent) -> Void
    public var sleep: @Sendable (Double) -> Void
    /// How nodes are reached over SSH; their pins go with them when they are removed.
    public var nodeSSH: NodeSSHAccess?

    public init(
      prober: any HealthProbing = HealthChecker(), drainer: any Draining,
      prepare: @escaping @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition = { n, _ in n },
      consoleLog: @escaping @Sendable (String) -> String? = { _ in nil }, shouldStop: @escaping @Sendable () -> Bool = { false },
      onEvent: @escaping @Sendable (RolloutEvent) -> Void = { _ in }, sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) },
      nodeSSH: NodeSSHAccess? = nil
    ) {
      self.prober = prober
      self.drainer = drainer
      self.prepare = prepare
      self.consoleLog = consoleLog
      self.shouldStop = shouldStop
      self.onEvent = onEvent
      self.sleep = sleep
      self.nodeSSH = nodeSSH
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

  private let counts = Mutex((created: 0, removed: 0))
  /// Hosts the rollout's nodes are on or move to, beyond the pool's (a node leaving a host that
  /// is no longer in `hosts:`): set once the rollout's state is known.
  private let rolloutHosts = Mutex<Set<String>>([])

  /// Every host a domain of this rollout can be on, sorted.
  var hosts: [String] { Set(pool.hosts).union(rolloutHosts.withLock { $0 }).sorted() }

  /// Runs the rollout the plan decided: a new one journaled with exactly the preview's schedule,
  /// policy and nodes, or the journaled one the preview continues.
  public func run(_ preview: RolloutPreview) throws -> RolloutOutcome {
    var state: RolloutState
    let active = try journal.active()
    if let id = preview.resumes {
      guard let active, active.id == id else {
        throw Diagnostic.error(
          "plan.stale", "rollout \(id) of pool \(pool.name) is no longer in progress", subject: "pool \(pool.name)",
          hint: "run drover plan again")
      }
      guard active.nodes.count == Set(active.schedule.joined()).count else {
        throw Diagnostic.error(
          "rollout.journal", "rollout \(id) of pool \(pool.name) was journaled by an older Drover without its node plan",
          subject: "pool \(pool.name)", hint: "abort it (drover rollout abort \(pool.name)), then apply again")
      }
      state = active
      hooks.onEvent(.init(.resumed, rollout: state.id, message: "resuming rollout \(state.id) of pool \(pool.name): \(state.fromImage) → \(state.toImage)"))
      if state.status == .paused { try journal.append(state.id, .resumed) }
    } else {
      if let active {
        throw Diagnostic.error(
          "plan.stale", "pool \(pool.name) has rollout \(active.id) in progress, which the plan did not include", subject: "pool \(pool.name)",
          hint: "run drover plan again")
      }
      let start = RolloutStart(
        pool: pool.name, fromImage: preview.fromImage, toImage: preview.toImage, schedule: preview.schedule, policy: preview.policy,
        nodes: preview.nodes, kind: preview.kind ?? .upgrade)
      let id = (preview.kind == .heal ? "heal-" : "") + "\(pool.name)-\(Int(Date().timeIntervalSince1970 * 1000))"
      try journal.append(id, .rolloutStarted, detail: String(decoding: try JSONEncoder().encode(start), as: UTF8.self))
      guard let started = try journal.active() else {
        throw Diagnostic.error("rollout.journal", "rollout \(id) was written but cannot be read back from \(journal.path)")
      }
      state = started
      hooks.onEvent(
        .init(
          .started, rollout: id,
          message:
            "rollout \(id) of pool \(pool.name): \(preview.fromImage) → \(preview.toImage), waves \(state.schedule.map { $0.joined(separator: ",") }.joined(separator: " | "))"))
    }
    let involved = Set(state.nodes.values.flatMap { [$0.host, $0.targetHost] })
    rolloutHosts.withLock { $0 = involved }
    var soaked: Set<Int> = []
    while true {
      // A journal that cannot be read now is never taken for the state before the batch.
      state = try journal.checkedRollouts().last { $0.id == state.id } ?? state
      if hooks.shouldStop() {
        try journal.append(state.id, .paused, detail: "interrupted")
        return outcome(state, interrupted: true)
      }
      switch nextRolloutStep(state, soaked: soaked) {
      case .done:
        // The marks go before the journal says completed: a crash in between leaves a rollout
        // this machine resumes (and completes) rather than marks nobody clears.
        try clearMarks(state)
        CrashPoint.reached("marks-cleared")
        try journal.append(state.id, .completed)
        state.apply(JournalRecord(seq: 0, time: Date().timeIntervalSince1970, rollout: state.id, event: .completed))
        return outcome(state, interrupted: false)
      case .pause(let reason):
        try journal.append(state.id, .paused, detail: reason)
        hooks.onEvent(.init(.paused, rollout: state.id, message: "rollout paused: \(reason)"))
        state.apply(JournalRecord(seq: 0, time: 0, rollout: state.id, event: .paused))
        return outcome(state, interrupted: false)
      case .soak(let ms, let wave):
        hooks.onEvent(.init(.soak, rollout: state.id, wave: wave, durationSeconds: Double(ms) / 1000, message: "soaking \(Double(ms) / 1000)s before wave \(wave)"))
        hooks.sleep(Double(ms) / 1000)
        soaked.insert(wave)
      case .replace(let wave, let keys):
        let batch = Array(keys.prefix(state.policy.concurrency))
        hooks.onEvent(
          .init(.wave, rollout: state.id, wave: wave, nodes: batch, message: "\(wave == 0 && state.policy.canary > 0 ? "canary" : "wave \(wave)"): replacing \(batch.joined(separator: ", "))"))
        let current = state
        let journalFailure = Mutex<Error?>(nil)
        BlockingFanOut.forEach(batch.count, width: batch.count) { i in
          let key = batch[i]
          do {
            guard let node = current.nodes[key] else { throw Diagnostic.error("rollout.journal", "node \(key) has no planned replacement") }
            if let reason = try self.replaceNode(node, state: current, rollback: false) {
              if current.failed[key] == nil { try self.journal.append(current.id, .nodeFailed, node: key, detail: reason) }
              self.hooks.onEvent(.init(.node, rollout: current.id, node: key, wave: wave, outcome: "failed", message: "\(key): FAILED: \(reason)"))
            } else {
              try self.journal.append(current.id, .nodeDone, node: key)
              self.hooks.onEvent(
                .init(.node, rollout: current.id, node: key, wave: wave, outcome: "done", message: "\(key): replaced and healthy on \(current.toImage) (\(node.reason))"))
            }
          } catch {
            let message = Diagnostic.line(of: error)
            do { try self.journal.append(current.id, .nodeFailed, node: key, detail: message) } catch {
              // Without the journal the rollout cannot know where it is: stop, never loop.
              journalFailure.withLock { $0 = $0 ?? error }
            }
            self.hooks.onEvent(.init(.node, rollout: current.id, node: key, wave: wave, outcome: "failed", message: "\(key): FAILED: \(message)"))
          }
        }
        if let failure = journalFailure.withLock({ $0 }) { throw failure }
      case .rollback(let reason, let keys):
        if state.status != .rollingBack {
          try journal.append(state.id, .rollbackStarted, detail: reason)
          hooks.onEvent(.init(.rollbackStarted, rollout: state.id, message: "rolling back: \(reason)"))
        }
        guard let key = keys.first else {
          try clearMarks(state)
          try journal.append(state.id, .rolledBack, detail: reason)
          state = journal.rollouts().last { $0.id == state.id } ?? state
          return outcome(state, interrupted: false, reason: reason)
        }
        guard let node = state.nodes[key] else {
          try journal.append(state.id, .nodeRolledBack, node: key, detail: "no planned replacement recorded")
          continue
        }
        let reasonBack = try replaceNode(node, state: state, rollback: true)
        try journal.append(state.id, .nodeRolledBack, node: key, detail: reasonBack)
        hooks.onEvent(
          .init(
            .rolledBack, rollout: state.id, node: key, outcome: reasonBack == nil ? "done" : "failed",
            message: "\(key): rolled back to \(node.from.image)\(reasonBack.map { " (but: \($0))" } ?? "")"))
      }
    }
  }

  func outcome(_ state: RolloutState, interrupted: Bool, reason: String? = nil) -> RolloutOutcome {
    var summary = ["rollout \(state.id) of pool \(state.pool): \(state.status.rawValue)"]
    if let reason { summary.append("reason: \(reason)") }
    for (node, why) in state.failed.sorted(by: { $0.key < $1.key }) { summary.append("failed \(node): \(why)") }
    if !state.rolledBack.isEmpty { summary.append("rolled back to \(state.fromImage): \(state.rolledBack.sorted().joined(separator: ", "))") }
    let c = counts.withLock { $0 }
    return RolloutOutcome(state: state, interrupted: interrupted, summary: summary, created: c.created, removed: c.removed)
  }

  /// The owned domains of one node index, on every host of the pool.
  func domains(index: Int) throws -> [(host: String, domain: ObservedDomain, ownership: NodeOwnership)] {
    var result: [(String, ObservedDomain, NodeOwnership)] = []
    for uri in hosts {
      guard let backend = backends[uri] else { continue }
      for (d, o) in try poolNodes(on: backend) where o.index == index { result.append((uri, d, o)) }
    }
    return result
  }

  /// The pool's nodes on one host: only records sealed for their very domain (a clone or a copy
  /// is never replaced, removed, kept or unmarked).
  func poolNodes(on backend: any HostBackend) throws -> [(domain: ObservedDomain, ownership: NodeOwnership)] {
    try backend.observe().domains.compactMap { d in
      guard let o = d.ownership, o.project == project, o.pool == pool.name, o.node == d.name, d.trust == .verified else { return nil }
      return (d, o)
    }
  }

  /// Deletes a domain of the rollout, counted; its pinned host keys go with it (best effort: a
  /// leftover pin names a machine that is gone).
  func remove(_ d: (host: String, domain: ObservedDomain, ownership: NodeOwnership), from backend: any HostBackend) throws {
    try backend.delete(node: d.domain.name, uuid: d.domain.uuid)
    counts.withLock { $0.removed += 1 }
    try? hooks.nodeSSH?.forget(aliases: [NodeSSHAccess.alias(node: d.domain.name, uuid: d.domain.uuid)])
  }

  func endpoint(_ d: (host: String, domain: ObservedDomain, ownership: NodeOwnership)) -> NodeEndpoint {
    NodeEndpoint.of(
      domain: d.domain, ownership: d.ownership, host: d.host, backend: backends[d.host], consoleLog: hooks.consoleLog(d.ownership.node), ssh: hooks.nodeSSH,
      onNetwork: pool.network != nil)
  }

  /// Runs one step of a node between its two journal records, and reports it with its duration
  /// and outcome (a step that throws is reported failed, then the error goes on).
  func step<T>(_ state: RolloutState, _ key: String, _ name: String, _ body: () throws -> T) throws -> T {
    try journal.append(state.id, .stepStarted, node: key, step: name)
    let started = Date()
    let wave = state.schedule.firstIndex { $0.contains(key) }
    var printed: String?
    func report(_ outcome: String, _ why: String? = nil) {
      let seconds = Date().timeIntervalSince(started)
      var event = RolloutEvent(
        .step, rollout: state.id, node: key, step: name, wave: wave, durationSeconds: seconds, outcome: outcome,
        message: String(format: "%@: %@ %@ (%.2fs)", key, name, outcome, seconds) + (why.map { ": " + $0 } ?? ""))
      event.output = printed
      hooks.onEvent(event)
    }
    let value: T
    do {
      // The hooks' output (cordon, drain, uncordon) goes with the step's line; a health check's
      // many probes do not.
      if name == "health" {
        value = try body()
      } else {
        let collected = try StepOutput.collect(body)
        value = collected.value
        printed = collected.output
      }
    } catch {
      report("failed", Diagnostic.line(of: error))
      throw error
    }
    try journal.append(state.id, .stepDone, node: key, step: name)
    // A health step returns why it failed; a drain whether it finished in time.
    if let why = value as Any as? String {
      report("failed", why)
    } else {
      report(value as Any as? Bool == false ? "timed out" : "done")
    }
    return value
  }

  /// Replaces one node by the safe steps (forward to its planned record, or back to the one it
  /// had); returns why it failed, or nil. Which domains it acts on is `replacementView`'s decision.
  func replaceNode(_ node: RolloutNode, state: RolloutState, rollback: Bool) throws -> String? {
    let key = node.key
    let found = try domains(index: node.index)
    let surge = state.policy.usesSurge
    let refs = found.map { IndexDomain(name: $0.domain.name, uuid: $0.domain.uuid, host: $0.host, generation: $0.ownership.generation) }
    let view = replacementView(node, domains: refs, rollback: rollback, surge: surge)
    if view.untouched { return nil }
    if rollback, let keep = view.new, keep.uuid == node.oldUUID, let original = found.first(where: { $0.domain.uuid == keep.uuid }) {
      // The original is still there: it stays, whatever was made beside it goes, and it is put
      // back in service.
      if let extra = view.old.flatMap({ ref in found.first { $0.domain.uuid == ref.uuid } }), let backend = backends[extra.host] {
        try step(state, node.key, "remove-replacement") { try remove(extra, from: backend) }
      }
      try step(state, node.key, "uncordon") { try hooks.drainer.uncordon(endpoint(original)) }
      return nil
    }
    let old = view.old.flatMap { ref in found.first { $0.domain.uuid == ref.uuid } }
    // New domains go to the node's target host (its own, or the one it moves to); an existing
    // one is acted on where it is.
    let host = view.new?.host ?? node.targetHost
    guard let backend = backends[host] else { return "no connection to \(host)" }
    func backendOf(_ d: (host: String, domain: ObservedDomain, ownership: NodeOwnership)) throws -> any HostBackend {
      guard let b = backends[d.host] else { throw Diagnostic.error("rollout.host", "no connection to \(d.host)", subject: "node \(d.domain.name)") }
      return b
    }
    let drainSeconds = pool.drain.timeout.seconds
    // A move with surge makes the new node first, on the other host, and takes the old one out
    // of service only once it is healthy.
    let movingFirst = surge && old.map { $0.host != host } == true

    func cordonAndDrain(_ old: (host: String, domain: ObservedDomain, ownership: NodeOwnership)) throws -> String? {
      let ep = endpoint(old)
      // A heal's node is sick: a cordon or drain that fails (a hook that reaches into the dead
      // node, a drain refused) is journaled and the node is replaced anyway — a dead node that
      // cannot be cordoned must not stay dead. Only a rollout of kind heal reads `node.heal`.
      let healing = state.kind == .heal ? node.heal : nil
      if healing != nil {
        do { try step(state, key, "cordon") { try hooks.drainer.cordon(ep) } } catch {
          let why = Diagnostic.line(of: error)
          try journal.append(state.id, .stepDone, node: key, step: "cordon-failed", detail: why)
          hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "cordon", outcome: "failed", message: "\(key): cordon failed (\(why)); the sick node is replaced anyway"))
        }
      } else {
        try step(state, key, "cordon") { try hooks.drainer.cordon(ep) }
      }
      switch healing {
      case .skip(let reason):
        // Nothing runs to drain: the step says so in the journal, and the node is replaced.
        try journal.append(state.id, .stepDone, node: key, step: "drain-skipped", detail: reason)
        hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "drain", outcome: "skipped", message: "\(key): drain skipped: \(reason)"))
        return nil
      case .force(let seconds, let reason):
        let limit = min(seconds, drainSeconds)
        let outcome: String
        do {
          let drained = try step(state, key, "drain-forced") { try hooks.drainer.drain(ep, timeout: limit) }
          outcome = drained ? "drained" : "not drained within \(Int(limit))s, replaced anyway"
        } catch {
          let why = Diagnostic.line(of: error)
          try journal.append(state.id, .stepDone, node: key, step: "drain-failed", detail: why)
          outcome = "the drain failed (\(why)), replaced anyway"
        }
        hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "drain", outcome: "forced", message: "\(key): drain forced (\(reason)): \(outcome)"))
        return nil
      case nil: break
      }
      let drained = try step(state, key, "drain") { try hooks.drainer.drain(ep, timeout: drainSeconds) }
      if !drained && pool.drain.onTimeout == .fail {
        if pool.drain.onFailure == .uncordon { try? hooks.drainer.uncordon(ep) }
        return "drain of \(old.domain.name) timed out after \(pool.drain.timeout) (on_timeout: fail)"
      }
      return nil
    }
    if let old, !movingFirst, let failure = try cordonAndDrain(old) { return failure }
    var target = view.new.flatMap { ref in found.first { $0.domain.uuid == ref.uuid } }
    func create() throws {
      var o = view.target
      if !rollback { o.node = replacementName(key: key, generation: o.generation, occupied: old?.domain.name, surge: surge) }
      o.rollout = mark(state, key: key, rollback: rollback)
      var definition = NodeDefinition(ownership: o)
      definition.exactBuild = state.kind == .heal
      let prepared = try hooks.prepare(definition, backend)
      try backend.create(prepared)
      counts.withLock { $0.created += 1 }
      target = try domains(index: node.index).first { $0.domain.name == o.node && $0.ownership.generation == o.generation }
    }
    if surge {
      if target == nil { try step(state, key, "create") { try create() } }
      guard let t = target else { return "the new node did not appear" }
      if let reason = try step(state, key, "health", { try health(t, rollout: state.id, key: key) }) {
        try step(state, key, "remove-failed") { try remove(t, from: backend) }
        if let old, !movingFirst, pool.drain.onFailure == .uncordon { try? hooks.drainer.uncordon(endpoint(old)) }
        return reason
      }
      if let old, movingFirst, let failure = try cordonAndDrain(old) { return failure }
      if let old { try step(state, key, "remove-old") { try remove(old, from: try backendOf(old)) } }
    } else {
      if let old { try step(state, key, "remove-old") { try remove(old, from: try backendOf(old)) } }
      if target == nil { try step(state, key, "create") { try create() } }
      guard let t = target else { return "the new node did not appear" }
      if let reason = try step(state, key, "health", { try health(t, rollout: state.id, key: key) }) {
        // It stays (the old one is gone): its record says it failed, so plan replaces it later.
        var failed = t.ownership
        failed.healthFailed = true
        do { try backend.update(node: t.domain.name, uuid: t.domain.uuid, to: failed, restart: false) } catch {
          return reason + " (and recording that in its record failed: \(Diagnostic.line(of: error)))"
        }
        return reason
      }
    }
    if let t = target { try step(state, key, "uncordon") { try hooks.drainer.uncordon(endpoint(t)) } }
    return nil
  }

  /// The mark a node this rollout creates carries (see `RolloutMark`).
  func mark(_ state: RolloutState, key: String, rollback: Bool) -> RolloutMark {
    let wave = state.schedule.firstIndex { $0.contains(key) } ?? 0
    let phase = rollback ? "rollback" : wave == 0 && state.policy.canary > 0 ? "canary" : "wave-\(wave)"
    return RolloutMark(
      id: state.id, phase: phase, fromImage: state.fromImage, toImage: state.toImage, by: "\(ProcessInfo.processInfo.hostName)/\(getpid())",
      total: Set(state.schedule.joined()).count)
  }

  /// Rewrites, in place, every record of the pool still marked with this rollout, without the mark.
  func clearMarks(_ state: RolloutState) throws {
    for uri in hosts {
      guard let backend = backends[uri] else {
        throw Diagnostic.error(
          "rollout.marks", "cannot clear the marks of rollout \(state.id) on \(uri): no connection", subject: "pool \(pool.name)",
          hint: "the rollout stays in progress; resume it when the host is back")
      }
      for (d, marked) in try poolNodes(on: backend) where marked.rollout?.id == state.id {
        var o = marked
        o.rollout = nil
        try backend.update(node: d.name, uuid: d.uuid, to: o, restart: false)
      }
    }
  }

  /// How often a health wait says it is still waiting.
  static let waitReportSeconds = 10.0

  /// Waits for the node's health checks. While it waits, a line every 10 s says what it awaits
  /// and for how long (the prober polls `shouldStop` between probes); a failure names the check
  /// and, for a node with a console log, where that log is.
  func health(_ t: (host: String, domain: ObservedDomain, ownership: NodeOwnership), rollout: String, key: String) throws -> String? {
    let limit = pool.upgrade.healthTimeout.seconds
    let started = Date()
    let deadline = started.addingTimeInterval(limit)
    let ep = endpoint(t)
    let awaited = pool.health.map(HealthChecker.describe).joined(separator: ", ")
    // The node's key names the line, as every other of its steps; a new domain's own name
    // (generation suffix `-g2`) is said once, so nobody wonders which node it is.
    let node = t.ownership.node == key ? key : "\(key) (new domain \(t.ownership.node))"
    let reported = Mutex(started)
    let stop = hooks.shouldStop
    let onEvent = hooks.onEvent
    let poll: @Sendable () -> Bool = {
      let now = Date()
      let due = reported.withLock { last -> Bool in
        guard now.timeIntervalSince(last) >= Self.waitReportSeconds else { return false }
        last = now
        return true
      }
      if due {
        let waited = Int(now.timeIntervalSince(started))
        onEvent(
          .init(
            .waiting, rollout: rollout, node: key, step: "health", durationSeconds: now.timeIntervalSince(started),
            message: "\(node): still waiting for \(awaited.isEmpty ? "its health checks" : awaited): \(waited)s of \(Int(limit))s"))
      }
      return stop()
    }
    guard let reason = hooks.prober.unhealthyReason(ep, checks: pool.health, deadline: deadline, shouldStop: poll) else {
      ep.pinIfShown()
      return nil
    }
    return reason + (ep.consoleLog.map { "; console log: \($0)" } ?? "")
  }
}
