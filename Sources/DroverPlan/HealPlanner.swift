import DroverBasics
import DroverModel
import DroverRollout

/// One node as a heal pass judged it (for people, `--json` and metrics).
public struct HealNodeReport: Sendable, Codable, Hashable {
  public var pool: String
  public var key: String
  public var node: String
  public var host: String
  public var uuid: String?
  /// libvirt's state, when the host was read.
  public var state: String?
  /// `healthy`, `unhealthy` or `unknown`.
  public var condition: String
  public var since: Double?
  public var reason: String?
  /// The repair this pass runs on the node (`resume`, `start`, `reset`, `replace`), if any.
  public var action: String?
  /// What the ladder waits for, when nothing runs on an unhealthy node this pass.
  public var next: String?
}

/// A heal pass, decided: a typed plan of kind `heal`. `plan` holds exactly the rollouts that
/// replace nodes (kind heal), which the engine runs as it runs any plan's.
public struct HealPass: Sendable, Codable {
  public static let formatVersion = "1.0"
  public var formatVersion = HealPass.formatVersion
  public var kind = "heal"
  public var project: String
  public var time: Double
  public var decisions: [PoolHealDecision]
  public var nodes: [HealNodeReport]
  public var plan: Plan
  /// Hosts in outage this pass: nothing on them was reset or replaced.
  public var outageHosts: [String] = []

  /// The repairs on the nodes' own disks (resume, start, reset) this pass runs.
  public var repairs: [NodeRepair] { decisions.flatMap(\.repairs) }

  /// The exit status if every planned replacement succeeds (0, or 2 when unhealthy nodes are left).
  public var exitStatusIfDone: Int32 { healExitStatus(decisions) }
}

/// What a heal pass is decided from: the world as read, each node's signals (by UUID), what
/// the ledger remembers (by pool, then key), each pool's journal.
public struct HealInputs: Sendable {
  public var pools: [PoolSpec]
  public var observed: ObservedWorld
  public var project: String
  public var signals: [String: NodeSignals]
  public var memory: [String: [String: NodeMemory]]
  /// Each pool's rollout in progress, as journaled.
  public var active: [String: RolloutState]
  /// When each pool's last heal ended.
  public var lastHealEnded: [String: Double]
  public var now: Double
  /// The share of a host's judged nodes unhealthy at once above which it is in outage.
  public var outageThreshold: @Sendable (String) -> Double = { _ in 0.5 }
  /// Per pool: why its error budget holds `replace` back this pass (the burn rate over its rule,
  /// or unknown), as measured by the engine (#44).
  public var burnHolds: [String: String] = [:]
  /// Per pool: how long its past node replacements took (its journal), for the window's prediction.
  public var replaceHistory: [String: [Double]] = [:]

  public init(
    pools: [PoolSpec], observed: ObservedWorld, project: String, signals: [String: NodeSignals], memory: [String: [String: NodeMemory]],
    active: [String: RolloutState], lastHealEnded: [String: Double], now: Double, outageThreshold: @escaping @Sendable (String) -> Double = { _ in 0.5 },
    burnHolds: [String: String] = [:], replaceHistory: [String: [Double]] = [:]
  ) {
    self.burnHolds = burnHolds
    self.replaceHistory = replaceHistory
    self.outageThreshold = outageThreshold
    self.pools = pools
    self.observed = observed
    self.project = project
    self.signals = signals
    self.memory = memory
    self.active = active
    self.lastHealEnded = lastHealEnded
    self.now = now
  }
}

/// The verified nodes of the pools with `remediation:`, by pool then key; an index with two
/// domains (a crash mid-surge) is left out: apply settles it.
public func healCandidates(_ pools: [PoolSpec], observed: ObservedWorld, project: String) -> [String: [String: TrustedRecords.Entry]] {
  let names = Set(pools.filter { $0.remediation != nil }.map(\.name))
  var result: [String: [String: TrustedRecords.Entry]] = [:]
  var doubled: Set<String> = []
  // Only serving nodes are healed: a kept node (#45) is shut off on purpose.
  for entry in TrustedRecords(observed, project: project, keyHeld: true).owned where entry.domain.trust == .verified && entry.ownership.isServing {
    let o = entry.ownership
    guard names.contains(o.pool) else { continue }
    let key = o.key
    if result[o.pool]?[key] != nil { doubled.insert(key) }
    result[o.pool, default: [:]][key] = entry
  }
  // Two domains of one index (a crash mid-surge): which is the node is apply's to settle;
  // a heal of either could take the other's name or its scheduler entry.
  for key in doubled {
    for pool in result.keys { result[pool]?[key] = nil }
  }
  return result
}

/// Decides a heal pass. Pure: every node judged (`assessNode`), every pool decided
/// (`decideHeal`), and the replacements as rollouts of kind heal. Returns the pass and the
/// ledger to remember.
public func makeHealPass(_ input: HealInputs) -> (pass: HealPass, memory: [String: [String: NodeMemory]]) {
  let candidates = healCandidates(input.pools, observed: input.observed, project: input.project)
  var memory: [String: [String: NodeMemory]] = [:]
  var decisions: [PoolHealDecision] = []
  var reports: [HealNodeReport] = []
  var rollouts: [RolloutPreview] = []
  let healed = input.pools.filter { $0.remediation != nil }.sorted { $0.name < $1.name }
  // First every node judged, then the hosts in outage over all of them, then each pool decided.
  var judged: [(pool: PoolSpec, remediation: RemediationSpec, entries: [String: TrustedRecords.Entry], nodes: [HealNode])] = []
  for pool in healed {
    guard let remediation = pool.remediation else { continue }
    let entries = candidates[pool.name] ?? [:]
    let remembered = input.memory[pool.name] ?? [:]
    var nodes: [HealNode] = []
    var kept: [String: NodeMemory] = [:]
    for (key, entry) in entries.sorted(by: { $0.key < $1.key }) {
      let signals = input.signals[entry.domain.uuid] ?? NodeSignals(state: entry.domain.state, heartbeat: .none)
      let (condition, m) = assessNode(signals, uuid: entry.domain.uuid, heartbeat: pool.heartbeat, memory: remembered[key], now: input.now)
      var mem = m
      mem.host = entry.host
      mem.name = entry.domain.name
      kept[key] = mem
      nodes.append(
        HealNode(key: key, name: entry.domain.name, uuid: entry.domain.uuid, host: entry.host, condition: condition, state: signals.state, incident: mem.incident))
    }
    // Nodes remembered on a host that could not be read: unknown, remembered as they were.
    for (key, m) in remembered.sorted(by: { $0.key < $1.key }) where entries[key] == nil {
      guard let host = m.host, let why = input.observed.unreachable[host] else { continue }
      kept[key] = m
      nodes.append(
        HealNode(key: key, name: m.name ?? key, uuid: m.uuid, host: host, condition: .unknown(reason: "host \(host) could not be read: \(why)"), incident: m.incident))
    }
    memory[pool.name] = kept
    judged.append((pool, remediation, entries, nodes))
  }
  let outage = hostsInOutage(judged.flatMap(\.nodes), threshold: input.outageThreshold)
  for (pool, remediation, entries, nodes) in judged {
    let active = input.active[pool.name].map { ActiveRollout(id: $0.id, kind: $0.kind, nodes: $0.schedule.joined().map { $0 }) }
    let poolInput = HealPoolInput(
      pool: pool.name, remediation: remediation, replicas: pool.replicas, protected: pool.protect, activeRollout: active,
      lastHealEnded: input.lastHealEnded[pool.name], nodes: nodes, outageHosts: outage,
      replaceHold: input.burnHolds[pool.name].map { "the error budget holds it: \($0)" } ?? windowHold(pool, now: input.now, history: input.replaceHistory[pool.name] ?? []))
    var decision = decideHeal(poolInput, now: input.now)
    // An interrupted heal goes on only as far as the verified records allow (never from its
    // journal alone): otherwise the pool is skipped this pass, and says why.
    if case .resume = decision.verdict, let state = input.active[pool.name] {
      let problems = resumeProblems(state, pool: pool, owned: entries.values.map { ($0.host, $0.domain, $0.ownership) })
      if let first = problems.first {
        decision = PoolHealDecision(
          pool: pool.name, verdict: .skipped(reason: first.message), repairs: decision.repairs, replace: [], left: decision.left + decision.replace,
          unknown: decision.unknown, why: first.message)
      }
    }
    decisions.append(decision)
    // Each node's incident as the ladder leaves it, the rung run now recorded as tried.
    let incidents = advanceIncidents(poolInput, decision: decision, now: input.now)
    for key in memory[pool.name]?.keys.sorted() ?? [] { memory[pool.name]?[key]?.incident = incidents[key] }
    let actions = Dictionary(decision.repairs.map { ($0.key, $0.rung.rawValue) } + decision.replace.map { ($0, RepairRung.replace.rawValue) }) { a, _ in a }
    for n in nodes {
      let state = entries[n.key]?.domain.state
      var report: HealNodeReport
      switch n.condition {
      case .healthy:
        report = HealNodeReport(pool: pool.name, key: n.key, node: n.name, host: n.host, uuid: n.uuid, state: state, condition: "healthy")
      case .unhealthy(let since, let reason):
        report = HealNodeReport(pool: pool.name, key: n.key, node: n.name, host: n.host, uuid: n.uuid, state: state, condition: "unhealthy", since: since, reason: reason)
        if actions[n.key] == nil, case .waiting(let why) = climbLadder(state: n.state, condition: n.condition, incident: n.incident, remediation: remediation, now: input.now).step {
          report.next = why
        }
      case .unknown(let reason):
        report = HealNodeReport(pool: pool.name, key: n.key, node: n.name, host: n.host, uuid: n.uuid, state: nil, condition: "unknown", reason: reason)
      }
      report.action = actions[n.key]
      reports.append(report)
    }
    switch decision.verdict {
    case .resume:
      if let state = input.active[pool.name] { rollouts.append(RolloutPreview.resuming(state, pool: pool)) }
    case .remediate:
      let reasons = Dictionary(nodes.compactMap { n -> (String, String)? in
        if case .unhealthy(_, let reason) = n.condition { return (n.key, reason) }
        return nil
      }) { a, _ in a }
      let chosen = decision.replace.compactMap { key -> (TrustedRecords.Entry, String)? in entries[key].map { ($0, reasons[key] ?? "unhealthy") } }
      if let preview = healRollout(pool, nodes: chosen, signals: input.signals) { rollouts.append(preview) }
    default: break
    }
  }
  let hosts = Set(healed.flatMap(\.hosts))
  let names = Set(input.pools.map(\.name))
  var plan = Plan(
    actions: [], specDigest: specDigest(input.pools), world: WorldFingerprint(input.observed, relevantHosts: hosts, project: input.project, pools: names))
  plan.rollouts = rollouts
  let declared = Dictionary(input.pools.map { ($0.name, $0) }) { a, _ in a }
  plan.accelerators = chooseAcceleration([], pools: declared, observed: input.observed).2
  var pass = HealPass(project: input.project, time: input.now, decisions: decisions, nodes: reports, plan: plan)
  pass.outageHosts = outage.sorted()
  return (pass, memory)
}

/// The rollout of kind heal that replaces `nodes` of `pool` in place, each rebuilt from its own
/// verified record (same image, digest and resources; the next generation): at most
/// `max_in_flight` at once, never rolled back (a heal's "before" is a dead node), each node's
/// drain skipped when libvirt says it is dead and forced when it only stopped beating.
func healRollout(_ pool: PoolSpec, nodes: [(entry: TrustedRecords.Entry, reason: String)], signals: [String: NodeSignals]) -> RolloutPreview? {
  guard let remediation = pool.remediation, !nodes.isEmpty else { return nil }
  let rolloutNodes = nodes.map { entry, reason -> RolloutNode in
    let o = entry.ownership
    var to = o
    to.generation = o.generation + 1
    to.node = o.key
    to.healthFailed = false
    to.rollout = nil
    var node = RolloutNode(
      key: o.key, index: o.index, host: entry.host, oldName: entry.domain.name, oldUUID: entry.domain.uuid, from: o, to: to,
      reason: "heal: \(reason)")
    let state = signals[entry.domain.uuid]?.state ?? entry.domain.state
    if let dead = deadState(state) {
      node.heal = .skip(reason: "the node is \(dead): nothing runs to drain")
    } else {
      let silence = pool.heartbeat?.silence.seconds ?? 60
      node.heal = .force(seconds: min(60, max(5, silence)), reason: "the node stopped answering: \(reason)")
    }
    return node
  }.sorted { $0.index < $1.index }
  let inFlight = min(remediation.maxInFlight, rolloutNodes.count)
  // The same resolution as every rollout: one wave, in place, `max_in_flight` at a time; every
  // node may fail (a heal that fails pauses; it never rolls a dead node back).
  let strategy = UpgradeStrategy(
    canary: .count(0), waves: [.count(rolloutNodes.count)], maxSurge: .count(0), maxUnavailable: .count(inFlight), soak: .seconds(0),
    healthTimeout: pool.upgrade.healthTimeout, onBudgetExceeded: .pause)
  var policy = RolloutPolicy.resolve(strategy, budget: .count(rolloutNodes.count), nodes: rolloutNodes.count, replicas: rolloutNodes.count)
  // Its window and budget too: a heal that would run past the window's end pauses (never waits).
  policy.schedule(pool)
  let images = Set(rolloutNodes.map(\.from.image)).sorted().joined(separator: ",")
  return RolloutPreview(
    pool: pool.name, fromImage: images, toImage: images, schedule: policy.schedule(rolloutNodes.map(\.key)), policy: policy,
    drainOnTimeout: DrainSpec.OnTimeout.force.rawValue, estimatedSeconds: policy.estimatedSeconds(perNodeSeconds: RolloutPreview.perNodeSeconds(pool.hosts)),
    nodes: rolloutNodes, resumes: nil, kind: .heal
  ).naming(pool.drain)
}

/// Why the pool's maintenance window holds `replace` back now (#44), or nil: it is open for a
/// node of the pool's predicted duration (repairs on a node's own disk are never held).
public func windowHold(_ pool: PoolSpec, now: Double, history: [Double]) -> String? {
  guard let window = pool.window else { return nil }
  let seconds = MaintenanceSchedule.predictedSeconds(history: history, fallback: RolloutPreview.perNodeSeconds(pool.hosts))
  switch MaintenanceSchedule.decide(window, now: now, seconds: seconds) {
  case .open: return nil
  case .wait(let until, let why): return "\(why); the window opens in \(Deferral.span(until - now))"
  case .never(let why): return why
  }
}
