import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Synchronization

/// What an apply did, as a value: every planned action is accounted for (done, failed or not
/// run), and the exit status follows from it alone.
public struct ApplyOutcome: Sendable {
  /// The plain actions (create, start, update, delete, overlay removal).
  public var executed = ApplyResult()
  /// Created or restarted nodes that never became healthy.
  public var unhealthy: [(action: PlannedAction, error: Diagnostic)] = []
  public var rollouts: [RolloutOutcome] = []
  /// Rollouts that could not run at all (a stale journal, an unreadable record).
  public var rolloutErrors: [Diagnostic] = []
  /// Planned replacements that were not done, with why.
  public var replacementsNotDone: [(node: String, why: String)] = []
  public var interrupted = false

  /// Domains really created and removed, nodes really changed (a canary created and rolled back
  /// counts as one added and one destroyed).
  public var added = 0
  public var changed = 0
  public var destroyed = 0

  /// Every failure, for rendering.
  public var diagnostics: [Diagnostic] {
    executed.failed.map(\.error) + unhealthy.map(\.error) + rolloutErrors
      + replacementsNotDone.map { Diagnostic.error("apply.not-done", "planned replacement of \($0.node) was not done: \($0.why)", subject: "node \($0.node)") }
  }

  /// A rollout that ran and stopped (rolled back or paused); an undo that brought every node
  /// back did what was asked.
  public var rolloutStopped: Bool { rollouts.contains { !$0.state.endedAsAsked } }

  /// 0 everything planned was done; 130 interrupted; 3 a rollout stopped; 1 anything else not done.
  public var exitStatus: Int32 {
    if interrupted || executed.interrupted { return 130 }
    if rolloutStopped { return 3 }
    if !executed.failed.isEmpty || !executed.skipped.isEmpty || !unhealthy.isEmpty || !rolloutErrors.isEmpty || !replacementsNotDone.isEmpty {
      return 1
    }
    return 0
  }
}

/// Runs a plan: exactly its actions, then health checks of the nodes it created or restarted,
/// then exactly its rollouts; returns what happened. No decision is made here that the plan did
/// not make: the executor and the rollout runner act on the plan's values.
public struct ApplyEngine: Sendable {
  public struct Hooks: Sendable {
    /// Gives a new domain its overlay (the image port), through the backend that defines it.
    public var prepare: @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition
    public var consoleLog: @Sendable (String) -> String?
    public var prober: any HealthProbing
    public var drainer: @Sendable (PoolSpec) -> any Draining
    public var shouldStop: @Sendable () -> Bool
    public var onStep: @Sendable (ApplyEvent) -> Void
    public var onHealthy: @Sendable (PlannedAction) -> Void
    public var onRollout: @Sendable (String, RolloutEvent) -> Void
    /// How nodes are reached over SSH (ssh checks, `DROVER_NODE_SSH`); nil: not at all.
    public var nodeSSH: NodeSSHAccess?
    /// In-process fault injection into the rollouts' journals (tests); nil in every command.
    public var journalFaults: (any JournalFaults)? = nil
    /// The locks this run acts under, proved before every step that changes a VM (#41); the job
    /// that took them sets it.
    public var fence: Fence = .none
    /// Where the rollouts' analysis gates are measured (#43); nil: no backend configured.
    public var metrics: (any MetricsQuerying)? = nil
    /// The rollouts' clock and sleep (#44: windows and burn-rate waits); tests inject both.
    public var now: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    public var sleep: @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }
    /// Each host's overcommit ratios (drover.yaml), for starting kept nodes again (#45).
    public var hostLimits: [String: HostLimits] = [:]

    public init(
      prepare: @escaping @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition = { n, _ in n },
      consoleLog: @escaping @Sendable (String) -> String? = { _ in nil }, prober: any HealthProbing = HealthChecker(),
      drainer: @escaping @Sendable (PoolSpec) -> any Draining = { Drainers.make($0.drain) },
      shouldStop: @escaping @Sendable () -> Bool = { false }, onStep: @escaping @Sendable (ApplyEvent) -> Void = { _ in },
      onHealthy: @escaping @Sendable (PlannedAction) -> Void = { _ in }, onRollout: @escaping @Sendable (String, RolloutEvent) -> Void = { _, _ in },
      nodeSSH: NodeSSHAccess? = nil, metrics: (any MetricsQuerying)? = nil
    ) {
      self.metrics = metrics
      self.prepare = prepare
      self.consoleLog = consoleLog
      self.prober = prober
      self.drainer = drainer
      self.shouldStop = shouldStop
      self.onStep = onStep
      self.onHealthy = onHealthy
      self.onRollout = onRollout
      self.nodeSSH = nodeSSH
    }
  }

  let pools: [String: PoolSpec]
  let backends: [String: any HostBackend]
  let project: String
  let journalDirectory: String
  public var hooks: Hooks
  /// The project's key holder: the journal is sealed and checked with it.
  let keyring: Keyring?
  /// Where the journal is: the state folder or the shared database.
  let state: StateStore

  public init(
    pools: [PoolSpec], backends: [String: any HostBackend], project: String, journalDirectory: String, keyring: Keyring?, state: StateStore, hooks: Hooks
  ) {
    self.keyring = keyring
    self.state = state
    self.pools = Dictionary(pools.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    self.backends = backends
    self.project = project
    self.journalDirectory = journalDirectory
    self.hooks = hooks
  }

  /// Completes every domain apply defines — plain creates, rollouts' and rollbacks' — with what
  /// the plan decided for its pool and host (its accelerator) and the seed its pool's spec and
  /// its own record give it (`CloudInitSeed.files`, pure), then prepares its disk.
  func definitions(_ plan: Plan) -> @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition {
    let pools = self.pools, prepare = hooks.prepare, ssh = hooks.nodeSSH
    return { node, backend in
      var n = node
      n.accel = n.accel ?? plan.accelerators[Plan.acceleratorKey(pool: n.ownership.pool, host: backend.uri)]
      if n.seed == nil, let pool = pools[n.ownership.pool] {
        // A rollback or resumed node carries the record it had; its seed is the pool's now, so its
        // record says that seed and an address the pool's addressing gives it (`SeedRecord.align`).
        n.ownership = SeedRecord.align(n.ownership, pool: pool)
        n.seed = CloudInitSeed.files(for: n.ownership, pool: pool, droverKey: ssh?.publicKey)
      }
      return try prepare(n, backend)
    }
  }

  public func run(_ plan: Plan) -> ApplyOutcome {
    var outcome = ApplyOutcome()
    var plain = plan
    plain.actions = plan.actions.filter { $0.kind != .replace }
    let prepare = definitions(plan)
    let fence = hooks.fence
    let executor = Executor(backends: backends, shouldStop: hooks.shouldStop, prepare: prepare, onEvent: hooks.onStep, fence: fence)
    outcome.executed = executor.apply(plain)
    // Pins of deleted nodes go with them (best effort: a leftover pin names a machine that is gone).
    try? hooks.nodeSSH?.forget(
      aliases: outcome.executed.done.filter { $0.kind == .delete }.compactMap { a in a.uuid.map { NodeSSHAccess.alias(node: a.node, uuid: $0) } })
    if !outcome.executed.interrupted {
      outcome.unhealthy = checkHealth(outcome.executed)
    }
    for a in outcome.executed.done {
      switch a.kind {
      case .create: outcome.added += 1
      case .update, .start: outcome.changed += 1
      case .delete, .removeOverlay: outcome.destroyed += 1
      case .replace: break
      }
    }

    let blocked = !outcome.executed.failed.isEmpty || !outcome.unhealthy.isEmpty || outcome.executed.interrupted
    for preview in plan.rollouts {
      let keys = preview.nodes.map(\.key)
      guard let pool = pools[preview.pool] else {
        outcome.replacementsNotDone += keys.map { ($0, "pool \(preview.pool) is not declared") }
        continue
      }
      if blocked || hooks.shouldStop() {
        outcome.replacementsNotDone += keys.map { ($0, "an earlier step of this apply failed or was interrupted") }
        continue
      }
      do {
        var runnerHooks = RolloutRunner.Hooks(
          prober: hooks.prober, drainer: hooks.drainer(pool), prepare: prepare, consoleLog: hooks.consoleLog,
          shouldStop: hooks.shouldStop, onEvent: { hooks.onRollout(pool.name, $0) }, sleep: hooks.sleep, nodeSSH: hooks.nodeSSH, fence: fence,
          metrics: hooks.metrics, now: hooks.now)
        runnerHooks.hostLimits = hooks.hostLimits
        let runner = RolloutRunner(pool: pool, project: project, backends: backends, journal: try journal(pool.name), hooks: runnerHooks)
        let result = try runner.run(preview)
        outcome.rollouts.append(result)
        outcome.added += result.created
        outcome.destroyed += result.removed
        if result.interrupted { outcome.interrupted = true }
        if result.state.status == .completed {
          for (node, why) in result.state.failed.sorted(by: { $0.key < $1.key }) { outcome.replacementsNotDone.append((node, why)) }
        }
      } catch {
        outcome.rolloutErrors += Diagnostic.list(of: error, code: "rollout", subject: "pool \(pool.name)")
        outcome.replacementsNotDone += keys.map { ($0, "the rollout did not run") }
      }
    }
    return outcome
  }

  /// The journal of `pool`'s rollouts, with the hooks' fault injection.
  func journal(_ pool: String) throws -> RolloutJournal {
    let journal = try RolloutJournal(directory: journalDirectory, pool: pool, keyring: keyring, state: state)
    journal.faults = hooks.journalFaults
    journal.fence = hooks.fence.token(pool: pool)
    journal.fenced = hooks.fence
    return journal
  }

  /// Health-checks every node this apply created, started or restarted, in parallel, within its
  /// pool's health timeout. A created node that never becomes healthy is marked so in its record.
  func checkHealth(_ result: ApplyResult) -> [(action: PlannedAction, error: Diagnostic)] {
    let checked = result.done.filter {
      ($0.kind == .create || $0.kind == .start || ($0.kind == .update && $0.restart)) && !(pools[$0.pool]?.health.isEmpty ?? true)
    }
    guard !checked.isEmpty else { return [] }
    let failures = Mutex<[(action: PlannedAction, error: Diagnostic)]>([])
    // Probes mostly wait (on a console log, a socket): up to 32 nodes are checked at once.
    BlockingFanOut.forEach(checked.count, width: 32) { i in
      let action = checked[i]
      guard let pool = pools[action.pool], let backend = backends[action.host] else { return }
      var endpoint = NodeEndpoint(
        name: action.node, host: action.host, pool: action.pool, image: action.after?.ownership.image ?? "",
        consoleLog: hooks.consoleLog(action.node))
      endpoint.ssh = hooks.nodeSSH
      let uuid = result.created[action.node]?.uuid ?? action.uuid
      endpoint.hostKeyAlias = uuid.map { NodeSSHAccess.alias(node: action.node, uuid: $0) }
      // A static address is the one its seed gave it: no lease to wait for.
      endpoint.address = action.after?.ownership.address
      endpoint.attach(to: backend, uuid: uuid)
      let reason = hooks.prober.unhealthyReason(
        endpoint, checks: pool.health, deadline: Date().addingTimeInterval(pool.upgrade.healthTimeout.seconds), shouldStop: hooks.shouldStop)
      guard let reason else {
        if action.kind == .create { endpoint.pinIfShown() }
        hooks.onHealthy(action)
        return
      }
      var diagnostic = Diagnostic.error("apply.unhealthy", "node \(action.node) is not healthy: \(reason)", subject: "node \(action.node) on \(action.host)")
      if action.kind == .create, let created = result.created[action.node] {
        // Never forgotten: the record says so, plan replaces it and drift reports it.
        var o = created.ownership
        o.healthFailed = true
        do {
          try hooks.fence.check("recording that \(action.node) failed its health checks")
          try backend.update(node: action.node, uuid: created.uuid, to: o, restart: false)
        } catch {
          diagnostic.message += " (and recording that failed: \(Diagnostic.line(of: error)))"
        }
      }
      failures.withLock { $0.append((action, diagnostic)) }
    }
    return failures.withLock { $0 }
  }
}
