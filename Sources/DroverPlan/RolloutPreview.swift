import DroverModel
import DroverRollout

/// The rollout schedule a plan shows for a pool whose nodes will be replaced.
public struct RolloutPreview: Sendable, Codable, Hashable {
  public var pool: String
  public var fromImage: String
  public var toImage: String
  public var schedule: [[String]]
  public var policy: RolloutPolicy
  public var drainOnTimeout: String
  public var estimatedSeconds: Double

  /// Seconds one node takes on real VMs (boot to ready under TCG, measured here) or the test driver.
  static func perNodeSeconds(_ hosts: [String]) -> Double { hosts.allSatisfy { $0.hasPrefix("test") } ? 0.1 : 12 }

  public static func make(pool: PoolSpec, actions: [PlannedAction]) -> RolloutPreview? {
    let replaces = actions.filter { $0.pool == pool.name && $0.kind == .replace }
    guard !replaces.isEmpty else { return nil }
    let keys = replaces.compactMap { $0.after?.ownership.index }.sorted().map { "\(pool.name)-\($0)" }
    let policy = RolloutPolicy.resolve(pool.upgrade, budget: pool.errorBudget, nodes: keys.count, replicas: pool.replicas)
    return RolloutPreview(
      pool: pool.name, fromImage: Set(replaces.compactMap { $0.before?.image }).sorted().joined(separator: ","),
      toImage: pool.image.description, schedule: policy.schedule(keys), policy: policy, drainOnTimeout: pool.drain.onTimeout.rawValue,
      estimatedSeconds: policy.estimatedSeconds(perNodeSeconds: perNodeSeconds(pool.hosts)))
  }
}
