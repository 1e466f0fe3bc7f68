import DroverModel

/// One node of a pool as a heal pass sees it: a verified domain and its judged health.
public struct HealNode: Sendable, Hashable {
  /// The index name (`web-2`).
  public var key: String
  public var name: String
  public var uuid: String
  public var host: String
  public var condition: NodeCondition
  /// libvirt's state of the domain (which repair rungs can act on it).
  public var state: String
  /// The node's open incident: the rungs tried so far.
  public var incident: RepairIncident?

  public init(key: String, name: String, uuid: String, host: String, condition: NodeCondition, state: String = "running", incident: RepairIncident? = nil) {
    self.key = key
    self.name = name
    self.uuid = uuid
    self.host = host
    self.condition = condition
    self.state = state
    self.incident = incident
  }
}

/// A repair of one node that brings it back on its own disk (resume, start, reset).
public struct NodeRepair: Sendable, Hashable, Codable {
  public var key: String
  public var node: String
  public var uuid: String
  public var host: String
  public var rung: RepairRung
  public var reason: String

  public init(key: String, node: String, uuid: String, host: String, rung: RepairRung, reason: String) {
    self.key = key
    self.node = node
    self.uuid = uuid
    self.host = host
    self.rung = rung
    self.reason = reason
  }
}

/// Everything a pool's heal decision depends on, as plain values.
public struct HealPoolInput: Sendable, Hashable {
  public var pool: String
  public var remediation: RemediationSpec
  public var replicas: Int
  public var protected: Bool
  /// The rollout in progress for the pool (its id and kind), if any.
  public var activeRollout: ActiveRollout?
  /// When the pool's last heal ended (for the cooldown).
  public var lastHealEnded: Double?
  public var nodes: [HealNode]
  /// Hosts in outage this pass (`hostsInOutage`): nothing on them is reset or replaced.
  public var outageHosts: Set<String>
  /// Why `replace` may not run now (#44: outside the pool's maintenance window, or its error
  /// budget burning too fast); nil: it may. The repairs on a node's own disk are never held.
  public var replaceHold: String?

  public init(
    pool: String, remediation: RemediationSpec, replicas: Int, protected: Bool, activeRollout: ActiveRollout? = nil,
    lastHealEnded: Double? = nil, nodes: [HealNode], outageHosts: Set<String> = [], replaceHold: String? = nil
  ) {
    self.replaceHold = replaceHold
    self.pool = pool
    self.remediation = remediation
    self.replicas = replicas
    self.protected = protected
    self.activeRollout = activeRollout
    self.lastHealEnded = lastHealEnded
    self.nodes = nodes
    self.outageHosts = outageHosts
  }

}

/// A pool's rollout in progress, as the heal decision needs it.
public struct ActiveRollout: Sendable, Hashable {
  public var id: String
  public var kind: RolloutKind
  /// The keys of the nodes it replaces.
  public var nodes: [String]
  public init(id: String, kind: RolloutKind, nodes: [String] = []) {
    self.id = id
    self.kind = kind
    self.nodes = nodes
  }
}

/// What a heal pass does with one pool.
public enum HealVerdict: Sendable, Hashable, Codable {
  /// Every known node is healthy.
  case healthy
  /// Replace these nodes now.
  case remediate
  /// Unhealthy nodes that have not been so for `unhealthy_after` yet.
  case waiting
  /// More nodes are unhealthy than `max_unhealthy` allows: a wider outage, nothing is replaced.
  case shortCircuit(unhealthy: Int, allowed: Int)
  /// A protected pool: reported, not remediated.
  case protected
  /// An upgrade rollout is in progress: the pool is left to it.
  case rolloutInProgress(id: String)
  /// A heal of this pool was interrupted: it is finished first, as journaled.
  case resume(id: String)
  /// The last heal ended less than `cooldown` ago.
  case cooldown(until: Double)
  /// Not judged this pass (its lock is held by another process).
  case skipped(reason: String)
  /// The unhealthy nodes are on hosts in outage: nothing there is reset or replaced.
  case outage(hosts: [String])
  /// Every remediation action the pool allows was tried: reported, never rebuilt.
  case exhausted
  /// An interrupted heal whose nodes are all healthy now: left for `drover rollout abort`.
  case staleHeal(id: String)

  public var name: String {
    switch self {
    case .healthy: return "healthy"
    case .remediate: return "remediate"
    case .waiting: return "waiting"
    case .shortCircuit: return "short-circuit"
    case .protected: return "protected"
    case .rolloutInProgress: return "rollout-in-progress"
    case .resume: return "resume"
    case .cooldown: return "cooldown"
    case .skipped: return "skipped"
    case .outage: return "outage"
    case .exhausted: return "no-action-left"
    case .staleHeal: return "stale-heal"
    }
  }
}

/// A pool's heal decision: what is replaced, what is left unhealthy and why.
public struct PoolHealDecision: Sendable, Hashable, Codable {
  public var pool: String
  public var verdict: HealVerdict
  /// Nodes brought back on their own disks in this pass (resume, start, reset).
  public var repairs: [NodeRepair] = []
  /// Keys of the nodes replaced in this pass (oldest unhealthy first): their disks are discarded.
  public var replace: [String]
  /// Keys of unhealthy nodes this pass leaves as they are.
  public var left: [String]
  /// Keys of nodes whose host could not be read.
  public var unknown: [String]
  /// For people: why the pass does what it does.
  public var why: String

  public init(pool: String, verdict: HealVerdict, repairs: [NodeRepair] = [], replace: [String], left: [String], unknown: [String], why: String) {
    self.pool = pool
    self.verdict = verdict
    self.repairs = repairs
    self.replace = replace
    self.left = left
    self.unknown = unknown
    self.why = why
  }

  /// Not every node is known healthy after this pass (exit 2), if it does what it decided:
  /// unhealthy nodes it leaves, nodes whose host could not be read, or a pool it skipped.
  public var leavesUnhealthy: Bool {
    if case .skipped = verdict { return true }
    return !left.isEmpty || !unknown.isEmpty
  }
}

/// Decides what a heal pass does with one pool. Pure.
///
/// Per node, the ladder (`climbLadder`) names the gentlest rung due. Then the pool's guards, in
/// order: an upgrade in progress wins (the pool is left to it, nothing is touched). `resume` and
/// `start` only bring a node back on its own disk: they always run. `reset` and `replace`
/// interrupt or remove a node: held back by the short-circuit (counted over every node unhealthy
/// now, however recently, against the nodes that exist), by protection, by an interrupted heal
/// (finished first, as journaled — unless every node it replaces is healthy now), by a host in
/// outage, by the cooldown, and at most `max_in_flight` at once, oldest unhealthy first.
public func decideHeal(_ input: HealPoolInput, now: Double) -> PoolHealDecision {
  let r = input.remediation
  let unhealthy = input.nodes.compactMap { n -> (node: HealNode, since: Double, reason: String)? in
    if case .unhealthy(let since, let reason) = n.condition { return (n, since, reason) }
    return nil
  }.sorted { ($0.since, $0.node.key) < ($1.since, $1.node.key) }
  let unknown = input.nodes.filter { if case .unknown = $0.condition { true } else { false } }.map(\.key).sorted()
  let allKeys = unhealthy.map(\.node.key)
  func decision(_ verdict: HealVerdict, repairs: [NodeRepair] = [], replace: [String] = [], why: String) -> PoolHealDecision {
    let acted = Set(repairs.map(\.key) + replace)
    return PoolHealDecision(
      pool: input.pool, verdict: verdict, repairs: repairs, replace: replace, left: allKeys.filter { !acted.contains($0) }, unknown: unknown, why: why)
  }
  if let active = input.activeRollout, active.kind != .heal {
    return decision(.rolloutInProgress(id: active.id), why: "rollout \(active.id) is in progress: the pool is left to it")
  }
  // The ladder per unhealthy node.
  var gentle: [NodeRepair] = []
  var disruptive: [(node: HealNode, rung: RepairRung, reason: String)] = []
  var waiting: [String] = []
  var exhausted: [String] = []
  for u in unhealthy {
    switch climbLadder(state: u.node.state, condition: u.node.condition, incident: u.node.incident, remediation: r, now: now).step {
    case .act(let rung) where !rung.isDisruptive:
      gentle.append(NodeRepair(key: u.node.key, node: u.node.name, uuid: u.node.uuid, host: u.node.host, rung: rung, reason: u.reason))
    case .act(let rung): disruptive.append((u.node, rung, u.reason))
    case .waiting(let why): waiting.append("\(u.node.key): \(why)")
    case .exhausted(let why): exhausted.append("\(u.node.key): \(why)")
    case .healthy: break
    }
  }
  let gentleWhy = gentle.map { "\($0.rung.rawValue) \($0.key) (\($0.reason))" }.joined(separator: "; ")
  func withGentle(_ why: String) -> String { gentle.isEmpty ? why : "\(gentleWhy); \(why)" }
  /// A guard that holds every disruptive rung back: the gentle ones still run.
  func held(_ verdict: HealVerdict, _ why: String) -> PoolHealDecision {
    gentle.isEmpty ? decision(verdict, why: why) : decision(.remediate, repairs: gentle, why: withGentle(why))
  }
  // The basis of a percentage is the nodes that exist (a scale-up not applied yet is no room
  // for more failures), never more than replicas.
  let basis = min(input.replicas, input.nodes.count)
  let allowed = r.maxUnhealthy.resolve(of: basis, roundUp: false)
  if unhealthy.count > allowed {
    return held(
      .shortCircuit(unhealthy: unhealthy.count, allowed: allowed),
      "\(unhealthy.count) of \(input.nodes.count) nodes are unhealthy, more than max_unhealthy \(r.maxUnhealthy) (\(allowed)): a wider outage, nothing is reset or replaced")
  }
  let protectedNow = input.protected && !r.remediateProtected
  if protectedNow && (!disruptive.isEmpty || input.activeRollout != nil) {
    return held(.protected, "the pool is protected: unhealthy nodes are reported, never reset or replaced (remediation.remediate_protected: true allows it)")
  }
  if let active = input.activeRollout {
    // A heal is finished only while a node it replaces is still unhealthy: one whose nodes all
    // came back is left for a person (`drover rollout abort`), never run from its journal alone.
    // (A node it removed and has not recreated yet is missing, not healthy: the heal goes on.)
    let healthy = Set(input.nodes.filter { $0.condition == .healthy }.map(\.key))
    guard !active.nodes.allSatisfy(healthy.contains) else {
      return held(.staleHeal(id: active.id), "heal \(active.id) was interrupted, but every node it replaces is healthy now: it is not resumed (drover rollout abort \(input.pool) ends it)")
    }
    if let hold = input.replaceHold {
      return held(.waiting, "heal \(active.id) was interrupted; it goes on when it may replace: \(hold)")
    }
    return decision(.resume(id: active.id), repairs: gentle.filter { !active.nodes.contains($0.key) }, replace: active.nodes, why: withGentle("heal \(active.id) was interrupted: it is finished first, as journaled"))
  }
  if unhealthy.isEmpty {
    return decision(.healthy, why: unknown.isEmpty ? "every node is healthy" : "every node read is healthy; \(unknown.count) unknown (host not read)")
  }
  let inOutage = disruptive.filter { input.outageHosts.contains($0.node.host) }
  var allowedHere = disruptive.filter { !input.outageHosts.contains($0.node.host) }
  var notes = waiting + exhausted
  if let hold = input.replaceHold {
    // Deferred, not forgotten: the rung stays due and runs in the first pass that may.
    let deferred = allowedHere.filter { $0.rung == .replace }.map(\.node.key)
    allowedHere.removeAll { $0.rung == .replace }
    if !deferred.isEmpty { notes.append("replace of \(deferred.joined(separator: ", ")) deferred: \(hold)") }
  }
  if !inOutage.isEmpty {
    let hosts = Set(inOutage.map(\.node.host)).sorted()
    notes.append("host \(hosts.joined(separator: ", ")) in outage: \(inOutage.map(\.node.key).joined(separator: ", ")) not reset or replaced")
  }
  if allowedHere.isEmpty {
    if !gentle.isEmpty { return decision(.remediate, repairs: gentle, why: withGentle(notes.joined(separator: "; "))) }
    if !inOutage.isEmpty { return decision(.outage(hosts: Set(inOutage.map(\.node.host)).sorted()), why: notes.joined(separator: "; ")) }
    if !exhausted.isEmpty && waiting.isEmpty { return decision(.exhausted, why: exhausted.joined(separator: "; ")) }
    return decision(.waiting, why: notes.joined(separator: "; "))
  }
  if let ended = input.lastHealEnded, now < ended + r.cooldown.seconds {
    let until = ended + r.cooldown.seconds
    return held(.cooldown(until: until), "the last heal ended \(wholeSeconds(now - ended))s ago, within cooldown \(r.cooldown)")
  }
  let chosen = Array(allowedHere.prefix(r.maxInFlight))
  let resets = chosen.filter { $0.rung == .reset }.map { NodeRepair(key: $0.node.key, node: $0.node.name, uuid: $0.node.uuid, host: $0.node.host, rung: .reset, reason: $0.reason) }
  let replace = chosen.filter { $0.rung == .replace }.map(\.node.key)
  var why = chosen.map { "\($0.rung.rawValue) \($0.node.key)\($0.rung.discardsDisk ? " (discards its disk)" : "") (\($0.reason))" }.joined(separator: "; ")
  if allowedHere.count > chosen.count { why += "; \(allowedHere.count - chosen.count) more next pass (max_in_flight \(r.maxInFlight))" }
  if !notes.isEmpty { why += "; " + notes.joined(separator: "; ") }
  return decision(.remediate, repairs: gentle + resets, replace: replace, why: withGentle(why))
}

/// The incidents to remember after a pass that decided `decision`: each node's ladder state,
/// with the rung it runs now recorded as tried (before it runs: a crash never repeats it).
public func advanceIncidents(_ input: HealPoolInput, decision: PoolHealDecision, now: Double) -> [String: RepairIncident] {
  var result: [String: RepairIncident] = [:]
  let acting = Dictionary(decision.repairs.map { ($0.key, $0.rung) }) { a, _ in a }
  for n in input.nodes {
    var (_, incident) = climbLadder(state: n.state, condition: n.condition, incident: n.incident, remediation: input.remediation, now: now)
    let since: Double
    if case .unhealthy(let s, _) = n.condition { since = s } else { since = now }
    if let rung = acting[n.key] ?? (decision.replace.contains(n.key) ? .replace : nil) {
      incident = recordAttempt(rung, in: incident, since: since, remediation: input.remediation, now: now)
    }
    if let incident { result[n.key] = incident }
  }
  return result
}

/// Hosts in outage: more than `threshold(host)` of the judged nodes on the host are unhealthy at
/// once, and at least two are (one node of one host tells nothing about the host). Nodes whose
/// host could not be read are not counted.
public func hostsInOutage(_ nodes: [HealNode], threshold: (String) -> Double) -> Set<String> {
  var total: [String: Int] = [:], bad: [String: Int] = [:]
  for n in nodes {
    switch n.condition {
    case .unknown: continue
    case .healthy: total[n.host, default: 0] += 1
    case .unhealthy:
      total[n.host, default: 0] += 1
      bad[n.host, default: 0] += 1
    }
  }
  return Set(bad.compactMap { host, count in
    count >= 2 && Double(count) > threshold(host) * Double(total[host] ?? count) ? host : nil
  })
}

/// The exit status of a heal pass that did what it decided: 0 all healthy, 2 unhealthy nodes
/// left (short-circuit, protected, cooldown, waiting, rate limit, rollout in progress); a
/// remediation that failed is 3 (the runner's outcome says so).
public func healExitStatus(_ decisions: [PoolHealDecision]) -> Int32 {
  decisions.contains { $0.leavesUnhealthy } ? 2 : 0
}
