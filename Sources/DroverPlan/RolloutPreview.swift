import DroverModel
import DroverRollout

/// The rollout a plan runs for a pool whose nodes are replaced: its schedule, its policy and each
/// node's planned replacement. `apply` (live or from a saved plan) executes exactly this value.
public struct RolloutPreview: Sendable, Codable, Hashable {
  public var pool: String
  public var fromImage: String
  public var toImage: String
  public var schedule: [[String]]
  public var policy: RolloutPolicy
  public var drainOnTimeout: String
  public var estimatedSeconds: Double
  /// Every node the rollout replaces, in schedule order.
  public var nodes: [RolloutNode]
  /// The id of the journaled rollout this continues, when one is in progress.
  public var resumes: String?
  /// An upgrade (the spec changed) or a heal (`drover heal`); absent in older plan files: upgrade.
  public var kind: RolloutKind? = nil
  /// The scheduler the pool drains through (`kubernetes`, `slurm`) and, per node, the names it is
  /// cordoned, drained and uncordoned under (#42); nil for hooks or no drain, and in older plans.
  public var scheduler: String? = nil
  public var schedulerNames: [SchedulerNames]? = nil

  public init(
    pool: String, fromImage: String, toImage: String, schedule: [[String]], policy: RolloutPolicy, drainOnTimeout: String, estimatedSeconds: Double,
    nodes: [RolloutNode], resumes: String?, kind: RolloutKind? = nil
  ) {
    self.pool = pool
    self.fromImage = fromImage
    self.toImage = toImage
    self.schedule = schedule
    self.policy = policy
    self.drainOnTimeout = drainOnTimeout
    self.estimatedSeconds = estimatedSeconds
    self.nodes = nodes
    self.resumes = resumes
    self.kind = kind
  }

  /// This preview with the names `drain` gives each node in the scheduler (the plan shows them).
  public func naming(_ drain: DrainSpec) -> RolloutPreview {
    var named = self
    named.scheduler = drain.backend.scheduler
    named.schedulerNames = named.scheduler == nil ? nil : nodes.compactMap { drain.backend.schedulerNames(from: $0.from, to: $0.to) }
    return named
  }

  /// Seconds one node takes on real VMs (boot to ready under TCG, measured here) or the test driver.
  static func perNodeSeconds(_ hosts: [String]) -> Double { hosts.contains { HostDriver.bootsNodes(uri: $0) } ? 12 : 0.1 }

  /// The rollout of `pool`'s replace actions (image, disk, network, `--replace`, a failed node, a
  /// disk changed outside Drover), or nil when it has none.
  public static func make(pool: PoolSpec, actions: [PlannedAction]) -> RolloutPreview? {
    let nodes = actions.filter { $0.pool == pool.name && $0.kind == .replace }.compactMap { a -> RolloutNode? in
      guard let before = a.before, let after = a.after?.ownership, let uuid = a.uuid else { return nil }
      var node = RolloutNode(
        key: NodeName.of(pool: pool.name, index: before.index), index: before.index, host: a.host, oldName: a.node, oldUUID: uuid, from: before, to: after,
        reason: a.reason)
      node.toHost = a.destination
      return node
    }.sorted { $0.index < $1.index }
    guard !nodes.isEmpty else { return nil }
    var policy = RolloutPolicy.resolve(pool.upgrade, budget: pool.errorBudget, nodes: nodes.count, replicas: pool.replicas)
    policy.schedule(pool)
    let kept = keeping(nodes, pool: pool, policy: &policy)
    return RolloutPreview(
      pool: pool.name, fromImage: Set(nodes.map(\.from.image)).sorted().joined(separator: ","),
      toImage: pool.image.description, schedule: policy.schedule(nodes.map(\.key)), policy: policy, drainOnTimeout: pool.drain.onTimeout.rawValue,
      estimatedSeconds: policy.estimatedSeconds(perNodeSeconds: perNodeSeconds(pool.hosts)), nodes: kept, resumes: nil
    ).naming(pool.drain)
  }

  /// Marks the nodes whose replaced domain is kept (#45): the last `keep_previous` of the
  /// schedule (the order they are replaced in), never one that moves to another host (the host
  /// it leaves is not one to go back to).
  static func keeping(_ nodes: [RolloutNode], pool: PoolSpec, policy: inout RolloutPolicy) -> [RolloutNode] {
    guard let keep = pool.upgrade.keepPrevious else { return nodes }
    let count = keep.nodes.resolve(of: pool.replicas, roundUp: true)
    let order = policy.schedule(nodes.map(\.key)).joined()
    let kept = Set(order.filter { key in nodes.contains { $0.key == key && $0.toHost == nil } }.suffix(count))
    guard !kept.isEmpty else { return nodes }
    policy.keepSeconds = keep.duration.seconds
    policy.keepShutdownSeconds = keep.shutdownTimeout.seconds
    policy.keptCapacity = pool.keptCapacity
    policy.keepState = keep.state
    return nodes.map { n in
      var n = n
      if kept.contains(n.key) { n.keep = true }
      return n
    }
  }

  /// The rollout in progress for `pool`, continued as the journal has it (its policy as journaled:
  /// the window and budget it started with).
  public static func resuming(_ state: RolloutState, pool: PoolSpec) -> RolloutPreview {
    RolloutPreview(
      pool: state.pool, fromImage: state.fromImage, toImage: state.toImage, schedule: state.schedule, policy: state.policy,
      drainOnTimeout: pool.drain.onTimeout.rawValue,
      estimatedSeconds: state.policy.estimatedSeconds(perNodeSeconds: perNodeSeconds(pool.hosts)),
      nodes: state.schedule.joined().compactMap { state.nodes[$0] }, resumes: state.id, kind: state.kind == .heal ? .heal : nil
    ).naming(pool.drain)
  }
}

extension RolloutPolicy {
  /// The pool's schedule gates (#44): its maintenance window and its error budget's burn rate,
  /// with the plan's estimate of one node for the window's prediction while there is no history.
  mutating func schedule(_ pool: PoolSpec) {
    window = pool.window
    burnRate = pool.burnRate
    estimatedNodeSeconds = (window != nil || burnRate != nil) ? RolloutPreview.perNodeSeconds(pool.hosts) : nil
  }
}
