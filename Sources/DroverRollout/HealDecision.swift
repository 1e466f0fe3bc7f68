import DroverModel

/// One node of a pool as a heal pass sees it: a verified domain and its judged health.
public struct HealNode: Sendable, Hashable {
  /// The index name (`web-2`).
  public var key: String
  public var name: String
  public var uuid: String
  public var host: String
  public var condition: NodeCondition

  public init(key: String, name: String, uuid: String, host: String, condition: NodeCondition) {
    self.key = key
    self.name = name
    self.uuid = uuid
    self.host = host
    self.condition = condition
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

  public init(
    pool: String, remediation: RemediationSpec, replicas: Int, protected: Bool, activeRollout: ActiveRollout? = nil,
    lastHealEnded: Double? = nil, nodes: [HealNode]
  ) {
    self.pool = pool
    self.remediation = remediation
    self.replicas = replicas
    self.protected = protected
    self.activeRollout = activeRollout
    self.lastHealEnded = lastHealEnded
    self.nodes = nodes
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
    }
  }
}

/// A pool's heal decision: what is replaced, what is left unhealthy and why.
public struct PoolHealDecision: Sendable, Hashable, Codable {
  public var pool: String
  public var verdict: HealVerdict
  /// Keys of the nodes replaced in this pass (oldest unhealthy first).
  public var replace: [String]
  /// Keys of unhealthy nodes this pass leaves as they are.
  public var left: [String]
  /// Keys of nodes whose host could not be read.
  public var unknown: [String]
  /// For people: why the pass does what it does.
  public var why: String

  public init(pool: String, verdict: HealVerdict, replace: [String], left: [String], unknown: [String], why: String) {
    self.pool = pool
    self.verdict = verdict
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
/// Order: an upgrade in progress wins (the pool is left to it); then the short-circuit, counted
/// over every node unhealthy now, however recently (a wider outage shows as many at once, not as
/// many past the timeout), against the nodes that exist; then protection; then an interrupted
/// heal is resumed; then the nodes unhealthy for at least `unhealthy_after`, oldest first, at
/// most `max_in_flight`, unless the last heal ended within `cooldown`.
public func decideHeal(_ input: HealPoolInput, now: Double) -> PoolHealDecision {
  let r = input.remediation
  let unhealthy = input.nodes.compactMap { n -> (key: String, since: Double, reason: String)? in
    if case .unhealthy(let since, let reason) = n.condition { return (n.key, since, reason) }
    return nil
  }.sorted { ($0.since, $0.key) < ($1.since, $1.key) }
  let unknown = input.nodes.filter { if case .unknown = $0.condition { true } else { false } }.map(\.key).sorted()
  let allKeys = unhealthy.map(\.key)
  func decision(_ verdict: HealVerdict, replace: [String] = [], why: String) -> PoolHealDecision {
    PoolHealDecision(pool: input.pool, verdict: verdict, replace: replace, left: allKeys.filter { !replace.contains($0) }, unknown: unknown, why: why)
  }
  if let active = input.activeRollout, active.kind != .heal {
    return decision(.rolloutInProgress(id: active.id), why: "rollout \(active.id) is in progress: the pool is left to it")
  }
  // A wider outage and protection stop an interrupted heal too: its nodes are left as they are
  // (a node it already removed is apply's to recreate, as any missing node).
  // The basis of a percentage is the nodes that exist (a scale-up not applied yet is no room
  // for more failures), never more than replicas.
  let basis = min(input.replicas, input.nodes.count)
  let allowed = r.maxUnhealthy.resolve(of: basis, roundUp: false)
  if unhealthy.count > allowed {
    return decision(
      .shortCircuit(unhealthy: unhealthy.count, allowed: allowed),
      why: "\(unhealthy.count) of \(input.nodes.count) nodes are unhealthy, more than max_unhealthy \(r.maxUnhealthy) (\(allowed)): a wider outage, nothing is replaced")
  }
  if input.protected && !r.remediateProtected && !unhealthy.isEmpty {
    return decision(.protected, why: "the pool is protected: unhealthy nodes are reported, not replaced (remediation.remediate_protected: true allows it)")
  }
  if let active = input.activeRollout {
    return decision(.resume(id: active.id), replace: active.nodes, why: "heal \(active.id) was interrupted: it is finished first, as journaled")
  }
  if unhealthy.isEmpty {
    return decision(.healthy, why: unknown.isEmpty ? "every node is healthy" : "every node read is healthy; \(unknown.count) unknown (host not read)")
  }
  let due = unhealthy.filter { now - $0.since >= r.unhealthyAfter.seconds }
  if due.isEmpty {
    let next = unhealthy.map { $0.since + r.unhealthyAfter.seconds - now }.min() ?? 0
    return decision(.waiting, why: "unhealthy for less than unhealthy_after \(r.unhealthyAfter); the first is due in \(wholeSeconds(next.rounded(.up)))s")
  }
  if let ended = input.lastHealEnded, now < ended + r.cooldown.seconds {
    let until = ended + r.cooldown.seconds
    return decision(.cooldown(until: until), why: "the last heal ended \(wholeSeconds(now - ended))s ago, within cooldown \(r.cooldown)")
  }
  let chosen = Array(due.prefix(r.maxInFlight)).map(\.key)
  var why = "replacing \(chosen.joined(separator: ", ")): " + due.prefix(r.maxInFlight).map { "\($0.key) \($0.reason)" }.joined(separator: "; ")
  if due.count > chosen.count { why += "; \(due.count - chosen.count) more next pass (max_in_flight \(r.maxInFlight))" }
  return decision(.remediate, replace: chosen, why: why)
}

/// The exit status of a heal pass that did what it decided: 0 all healthy, 2 unhealthy nodes
/// left (short-circuit, protected, cooldown, waiting, rate limit, rollout in progress); a
/// remediation that failed is 3 (the runner's outcome says so).
public func healExitStatus(_ decisions: [PoolHealDecision]) -> Int32 {
  decisions.contains { $0.leavesUnhealthy } ? 2 : 0
}
