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
    /// The locks the rollout runs under, proved before every step (#41).
    public var fence: Fence
    /// Where analysis gates are measured (#43); nil: nowhere, so a pool with gates is refused.
    public var metrics: (any MetricsQuerying)? = nil
    /// The clock maintenance windows and burn-rate waits are decided by (#44): tests inject one
    /// that `sleep` moves on.
    public var now: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    /// Each host's overcommit ratios (drover.yaml), for starting a kept node that gave up its room.
    public var hostLimits: [String: HostLimits] = [:]

    public init(
      prober: any HealthProbing = HealthChecker(), drainer: any Draining,
      prepare: @escaping @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition = { n, _ in n },
      consoleLog: @escaping @Sendable (String) -> String? = { _ in nil }, shouldStop: @escaping @Sendable () -> Bool = { false },
      onEvent: @escaping @Sendable (RolloutEvent) -> Void = { _ in }, sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) },
      nodeSSH: NodeSSHAccess? = nil, fence: Fence = .none, metrics: (any MetricsQuerying)? = nil,
      now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
      self.now = now
      self.fence = fence
      self.metrics = metrics
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
    journal.now = hooks.now
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
      // Going back (an abort, a rollback under way, a budget spent) needs no metrics.
      if !(state.abortRequested || state.status == .rollingBack || state.budgetExceeded) { try preflight(state.policy, resuming: state.id) }
      hooks.onEvent(.init(.resumed, rollout: state.id, message: "resuming rollout \(state.id) of pool \(pool.name): \(state.fromImage) → \(state.toImage)"))
      if state.status == .paused { try journal.append(state.id, .resumed) }
    } else {
      if let active {
        throw Diagnostic.error(
          "plan.stale", "pool \(pool.name) has rollout \(active.id) in progress, which the plan did not include", subject: "pool \(pool.name)",
          hint: "run drover plan again")
      }
      // A gated rollout whose metrics cannot be read never touches a node.
      try preflight(preview.policy)
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
    var waits = ScheduleWaits()
    while true {
      // A journal that cannot be read now is never taken for the state before the batch.
      let journaled = try journal.checkedRollouts()
      state = journaled.last { $0.id == state.id } ?? state
      if hooks.shouldStop() {
        try endWait(state, &waits, .interrupted)
        return try stopped(state, reason: "interrupted", interrupted: true)
      }
      let decision = nextRolloutStep(state, soaked: soaked)
      // A wait for the window or the budget ends with anything but the batch it held.
      if case .replace = decision {} else { try endWait(state, &waits, .interrupted) }
      switch decision {
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
      case .analyze(let wave, let keys):
        let analysis = try analyze(state, wave: wave, nodes: keys)
        switch analysis {
        case .passed(let whys):
          try journal.append(state.id, .analyzed, step: String(wave), detail: "passed: " + whys.joined(separator: "; "))
          hooks.onEvent(.init(.analysis, rollout: state.id, wave: wave, nodes: keys, outcome: "passed", message: "analysis of wave \(wave) passed"))
        case .failed(let why):
          // Every node the gate judged counts against the budget; exceeding it rolls back as a
          // failed health check would.
          for key in keys where state.failed[key] == nil {
            try journal.append(state.id, .nodeFailed, node: key, detail: "analysis: \(why)")
          }
          try journal.append(state.id, .analyzed, step: String(wave), detail: "failed: \(why)")
          hooks.onEvent(.init(.analysis, rollout: state.id, wave: wave, nodes: keys, outcome: "failed", message: "analysis of wave \(wave) FAILED: \(why)"))
        case .interrupted:
          continue
        case .paused, .measuring:
          var reason = "analysis: undecided"
          if case .paused(let why) = analysis { reason = "analysis: \(why)" }
          return try stopped(
            state, reason: reason, event: .init(.analysis, rollout: state.id, wave: wave, nodes: keys, outcome: "paused", message: "rollout paused: \(reason)"))
        }
      case .replace(let wave, let keys):
        // The window and the error budget, before every batch (#44); a rollback never waits.
        switch try scheduleGate(state, wave: wave, history: journaled, waits: &waits) {
        case .go: break
        case .again: continue
        case .interrupted: return try stopped(state, reason: "interrupted", interrupted: true)
        case .paused(let reason): return try stopped(state, reason: reason, event: .init(.paused, rollout: state.id, message: "rollout paused: \(reason)"))
        }
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
        // Nodes whose replaced domain was kept (#45) come back side by side: they need no new
        // room, and a rollback in seconds is why they were kept. Any other, one at a time.
        let warm = Array(keys.prefix { state.nodes[$0]?.keep == true })
        let batch = warm.isEmpty ? [key] : warm
        let current = state
        let failure = Mutex<Error?>(nil)
        BlockingFanOut.forEach(batch.count, width: batch.count) { i in
          let key = batch[i]
          do {
            guard let node = current.nodes[key] else {
              try self.journal.append(current.id, .nodeRolledBack, node: key, detail: "no planned replacement recorded")
              return
            }
            let reasonBack = try self.replaceNode(node, state: current, rollback: true)
            try self.journal.append(current.id, .nodeRolledBack, node: key, detail: reasonBack)
            self.hooks.onEvent(
              .init(
                .rolledBack, rollout: current.id, node: key, outcome: reasonBack == nil ? "done" : "failed",
                message: "\(key): rolled back to \(node.from.image)\(reasonBack.map { " (but: \($0))" } ?? "")"))
          } catch {
            failure.withLock { $0 = $0 ?? error }
          }
        }
        // As before: an error stops the run (the journal says where; a resume goes on).
        if let error = failure.withLock({ $0 }) { throw error }
      }
    }
  }

  /// Pauses the rollout for `reason` (journaled, then `event` said) and returns its outcome from
  /// the journal as it now stands; an interruption's outcome carries no reason line.
  func stopped(_ state: RolloutState, reason: String, interrupted: Bool = false, event: RolloutEvent? = nil) throws -> RolloutOutcome {
    try journal.append(state.id, .paused, detail: reason)
    if let event { hooks.onEvent(event) }
    let now = try journal.checkedRollouts().last { $0.id == state.id } ?? state
    return outcome(now, interrupted: interrupted, reason: interrupted ? nil : reason)
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

  func endpoint(_ d: IndexEntry, rollout: String? = nil) -> NodeEndpoint {
    var e = NodeEndpoint.of(
      domain: d.domain, ownership: d.ownership, host: d.host, backend: backends[d.host], consoleLog: hooks.consoleLog(d.ownership.node), ssh: hooks.nodeSSH,
      onNetwork: pool.network != nil)
    e.rollout = rollout
    return e
  }

  /// What a step of a node reports beside its journal records.
  enum StepReport: Equatable {
    case done
    /// A drain that did not finish within its time, and what held it (#42).
    case timedOut(String?)
    /// A health wait that ended unhealthy: why.
    case failed(String)
  }

  /// Runs one step of a node between its two journal records, and reports it with its duration
  /// and outcome (a step that throws is reported failed, then the error goes on).
  @discardableResult
  func step(_ state: RolloutState, _ key: String, _ name: String, _ body: () throws -> StepReport) throws -> StepReport {
    // Before the step is journaled or taken: a run that no longer holds its lock stops here.
    try hooks.fence.check("\(name) of \(key)")
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
    let value: StepReport
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
    var detail: String?
    if case .timedOut(let cause) = value { detail = cause }
    try journal.append(state.id, .stepDone, node: key, step: name, detail: detail)
    switch value {
    case .done: report("done")
    case .timedOut(let cause): report("timed out", cause)
    case .failed(let why): report("failed", why)
    }
    return value
  }

  typealias IndexEntry = (host: String, domain: ObservedDomain, ownership: NodeOwnership)

  /// A drain as a step's report: done, or timed out with what held it.
  func drain(_ ep: NodeEndpoint, timeout: Double) throws -> StepReport {
    let result = try hooks.drainer.drainResult(ep, timeout: timeout)
    return result.drained ? .done : .timedOut(result.cause)
  }

  /// Replaces one node by the safe steps (forward to its planned record, or back to the one it
  /// had); returns why it failed, or nil. Every step is `nextNodeStep`'s decision; this only acts
  /// on it and tells the next decision what happened.
  func replaceNode(_ node: RolloutNode, state: RolloutState, rollback: Bool) throws -> String? {
    let key = node.key
    var found = try domains(index: node.index)
    var attempt = NodeAttempt()
    // An operator's state on the node before its rollout (journaled, so a resumed run has it too).
    var hold = state.holds[key]
    func cordon(_ ep: NodeEndpoint) throws -> StepReport {
      if let held = try hooks.drainer.cordonNoting(ep), hold == nil {
        hold = held
        try journal.append(state.id, .stepDone, node: key, step: OperatorHold.journalStep, detail: held.journalText)
      }
      return .done
    }
    let drainPolicy = NodeDrainPolicy(pool.drain)
    let connected = Set(backends.keys)
    func entry(_ ref: IndexDomain) throws -> IndexEntry {
      guard let e = found.first(where: { $0.domain.uuid == ref.uuid }) else {
        throw Diagnostic.error("rollout.journal", "domain \(ref.name) of node \(key) is no longer on \(ref.host)", subject: "node \(key)")
      }
      return e
    }
    func backendOf(_ host: String) throws -> any HostBackend {
      guard let b = backends[host] else { throw Diagnostic.error("rollout.host", "no connection to \(host)", subject: "node \(key)") }
      return b
    }
    // A node takes at most nine steps; the bound turns a rule that never finishes into a failed
    // node instead of a loop.
    var last: NodeStep = .done
    for _ in 0..<32 {
      let refs = found.map { e in
        IndexDomain(
          name: e.domain.name, uuid: e.domain.uuid, host: e.host, generation: e.ownership.generation, kept: e.ownership.kept != nil,
          revived: e.ownership.rollout.map { $0.id == state.id && [Self.revivedPhase, Self.restoredPhase].contains($0.phase) } ?? false)
      }
      let input = NodeStepInput(
        node: node, domains: refs, rollback: rollback, surge: state.policy.usesSurge, healing: state.kind == .heal, drain: drainPolicy,
        connected: connected, attempt: attempt)
      last = nextNodeStep(input)
      switch last {
      case .done: return nil
      case .failed(let reason): return reason
      case .cordon(let ref, let mayFail):
        let ep = endpoint(try entry(ref), rollout: state.id)
        if mayFail {
          do { try step(state, key, "cordon") { try cordon(ep) } } catch {
            let why = Diagnostic.line(of: error)
            try journal.append(state.id, .stepDone, node: key, step: "cordon-failed", detail: why)
            hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "cordon", outcome: "failed", message: "\(key): cordon failed (\(why)); the sick node is replaced anyway"))
          }
        } else {
          try step(state, key, "cordon") { try cordon(ep) }
        }
        attempt.cordoned = true
      case .drain(let ref, let order):
        let ep = endpoint(try entry(ref), rollout: state.id)
        switch order {
        case .skip(let reason):
          // Nothing runs to drain: the step says so in the journal, and the node is replaced.
          try journal.append(state.id, .stepDone, node: key, step: "drain-skipped", detail: reason)
          hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "drain", outcome: "skipped", message: "\(key): drain skipped: \(reason)"))
          attempt.drain = .finished
        case .forced(let limit, let reason):
          let outcome: String
          do {
            let drained = try step(state, key, "drain-forced") { try drain(ep, timeout: limit) }
            if case .timedOut(let cause) = drained {
              outcome = "not drained within \(Int(limit))s\(cause.map { " (\($0))" } ?? ""), replaced anyway"
            } else {
              outcome = "drained"
            }
          } catch {
            let why = Diagnostic.line(of: error)
            try journal.append(state.id, .stepDone, node: key, step: "drain-failed", detail: why)
            outcome = "the drain failed (\(why)), replaced anyway"
          }
          hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "drain", outcome: "forced", message: "\(key): drain forced (\(reason)): \(outcome)"))
          attempt.drain = .finished
        case .graceful(let timeout, _):
          let drained = try step(state, key, "drain") { try drain(ep, timeout: timeout) }
          if case .timedOut(let cause) = drained {
            attempt.drain = .timedOut
            attempt.drainCause = cause
          } else {
            attempt.drain = .finished
          }
        }
      case .create(let record, let host, let exactBuild):
        let backend = try backendOf(host)
        try step(state, key, "create") {
          var o = record
          o.rollout = mark(state, key: key, rollback: rollback)
          var definition = NodeDefinition(ownership: o)
          definition.exactBuild = exactBuild
          let prepared = try hooks.prepare(definition, backend)
          // Preparing a disk can take minutes: proved again right before the define.
          try hooks.fence.check("create of \(key)")
          try backend.create(prepared)
          counts.withLock { $0.created += 1 }
          return .done
        }
        attempt.created = true
        found = try domains(index: node.index)
      case .health(let ref):
        let t = try entry(ref)
        let report = try step(state, key, "health") { try health(t, rollout: state.id, key: key).map { .failed($0) } ?? .done }
        if case .failed(let reason) = report { attempt.health = .unhealthy(reason) } else { attempt.health = .healthy }
      case .remove(let ref, let kind):
        let e = try entry(ref)
        let backend = try backendOf(e.host)
        try step(state, key, kind.rawValue) { try remove(e, from: backend); return .done }
        found.removeAll { $0.domain.uuid == ref.uuid }
      case .keep(let ref):
        let e = try entry(ref)
        let backend = try backendOf(e.host)
        try step(state, key, "keep") {
          var o = e.ownership
          let seconds = state.policy.keepSeconds ?? 3600
          o.kept = KeptNode(
            rollout: state.id, until: (hooks.now() + seconds).rounded(.up), reserves: state.policy.keptCapacity != .diskOnly,
            state: state.policy.keepState)
          o.rollout = mark(state, key: key, rollback: false, phase: Self.keptPhase)
          try hooks.fence.check("keeping \(key)")
          try backend.keep(node: e.domain.name, uuid: e.domain.uuid, as: o, shutdownSeconds: state.policy.keepShutdownSeconds ?? 30)
          return .done
        }
        found = try domains(index: node.index)
      case .revive(let ref):
        let e = try entry(ref)
        let backend = try backendOf(e.host)
        if let why = try roomToRevive(e, on: backend) {
          attempt.revived = true
          hooks.onEvent(.init(.step, rollout: state.id, node: key, step: "revive", outcome: "failed", message: "\(key): \(why)"))
          return why
        }
        try step(state, key, "revive") {
          var o = e.ownership
          // A hibernated node resumes where it was: its health is judged as a restored one's.
          let phase = e.ownership.kept?.isHibernated == true ? Self.restoredPhase : Self.revivedPhase
          o.kept = nil
          o.rollout = mark(state, key: key, rollback: true, phase: phase)
          try hooks.fence.check("starting kept node \(key)")
          try backend.revive(node: e.domain.name, uuid: e.domain.uuid, as: o)
          return .done
        }
        attempt.revived = true
        found = try domains(index: node.index)
      case .recordHealthFailure(let ref, let reason):
        // It stays (the old one is gone): its record says it failed, so plan replaces it later.
        let t = try entry(ref)
        var failed = t.ownership
        failed.healthFailed = true
        do {
          try hooks.fence.check("recording that \(key) failed its health checks")
          try backendOf(t.host).update(node: t.domain.name, uuid: t.domain.uuid, to: failed, restart: false)
        } catch {
          attempt.health = .unhealthy(reason + " (and recording that in its record failed: \(Diagnostic.line(of: error)))")
        }
        attempt.healthFailureRecorded = true
      case .uncordon(let ref, let bestEffort):
        let ep = endpoint(try entry(ref), rollout: state.id)
        if bestEffort {
          try? hooks.drainer.uncordon(ep, restoring: hold)
          attempt.oldUncordoned = true
        } else {
          try step(state, key, "uncordon") { try hooks.drainer.uncordon(ep, restoring: hold); return .done }
          attempt.uncordoned = true
        }
      }
      attempt.steps += 1
    }
    return "its steps did not finish (the last decided: \(last))"
  }

  /// The mark phases of a kept node and of one a rollback started again from kept (#45):
  /// booted again (`revived`), or resumed from its saved memory (`restored`).
  static let keptPhase = "kept"
  static let revivedPhase = "revived"
  static let restoredPhase = "restored"

  /// Why a kept node that gave up its vCPU and memory (`capacity: disk-only`) cannot start on its
  /// host now, naming the host; nil when it reserves them or fits (fail-closed: nothing started).
  func roomToRevive(_ e: IndexEntry, on backend: any HostBackend) throws -> String? {
    guard e.ownership.kept?.reserves == false else { return nil }
    let host = try backend.observe()
    let ledger = CapacityLedger(observed: ObservedWorld(hosts: [e.host: host]), limits: hooks.hostLimits, project: project)
    let demand = Demand(e.ownership)
    guard let why = ledger.shortfall(Demand(vcpu: demand.vcpu, memory: demand.memory), on: e.host) else { return nil }
    return "kept node \(e.domain.name) (capacity: disk-only) does not fit on \(e.host) to start again: the host is \(why); it stays kept"
  }

  /// The mark a node this rollout creates carries (see `RolloutMark`).
  func mark(_ state: RolloutState, key: String, rollback: Bool, phase named: String? = nil) -> RolloutMark {
    let wave = state.schedule.firstIndex { $0.contains(key) } ?? 0
    let phase = named ?? (rollback ? "rollback" : wave == 0 && state.policy.canary > 0 ? "canary" : "wave-\(wave)")
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
        try hooks.fence.check("clearing the mark of \(d.name)")
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
    // A node resumed from its saved memory did not boot: its boot markers are not awaited, a
    // fresh heartbeat is (`RestoredHealth`).
    let restored = t.ownership.rollout.map { $0.id == rollout && $0.phase == Self.restoredPhase } ?? false
    let checks = restored ? RestoredHealth.checks(pool.health) : pool.health
    let beat = restored ? pool.heartbeat.map { ["a fresh heartbeat (\($0.sourceName))"] } ?? [] : []
    let awaited = (checks.map(HealthChecker.describe) + beat).joined(separator: ", ")
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
    var unhealthy = hooks.prober.unhealthyReason(ep, checks: checks, deadline: deadline, shouldStop: poll)
    if restored, unhealthy == nil {
      unhealthy = RestoredHealth.freshBeat(pool.heartbeat, endpoint: ep, backend: backends[t.host], deadline: deadline, shouldStop: poll)
    }
    guard let reason = unhealthy else {
      ep.pinIfShown()
      return nil
    }
    return reason + (ep.consoleLog.map { "; console log: \($0)" } ?? "")
  }
}
