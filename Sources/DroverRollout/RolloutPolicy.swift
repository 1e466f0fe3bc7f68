import DroverModel

/// An upgrade strategy resolved against a pool's size: plain numbers, no percentages.
///
/// Rounding follows Kubernetes: surge and canary round up, unavailable and the error budget round
/// down; if surge and unavailable both come out 0, unavailable becomes 1 so a rollout can move.
public struct RolloutPolicy: Sendable, Hashable, Codable {
  public var canary: Int
  /// Sizes of the waves after the canary, covering every remaining node.
  public var waves: [Int]
  public var maxSurge: Int
  public var maxUnavailable: Int
  /// Failed nodes tolerated across the whole rollout; one more exceeds it.
  public var budget: Int
  public var soakMilliseconds: Int
  public var healthTimeoutMilliseconds: Int
  public var onBudgetExceeded: UpgradeStrategy.OnBudgetExceeded
  /// The analysis gates judged after the canary and each wave (#43), measured while `soak`
  /// lasts; nil or empty: none (and older journals and plans, which had none).
  public var analysis: [AnalysisGate]? = nil

  /// When nodes may be replaced (#44): checked before each batch with its predicted duration.
  public var window: MaintenanceWindow? = nil
  /// The service's error budget (#44): its burn rate checked before each wave.
  public var burnRate: BurnRateGate? = nil
  /// The plan's estimate of one node's replacement (seconds): the window's prediction while
  /// the pool's journal has no history.
  public var estimatedNodeSeconds: Double? = nil

  /// How long kept nodes stay (#45), seconds; nil: the rollout keeps none.
  public var keepSeconds: Double? = nil
  /// How long a kept node's guest gets to shut down before it is powered off.
  public var keepShutdownSeconds: Double? = nil
  /// Whether kept nodes reserve their vCPU and memory (nil: they do).
  public var keptCapacity: KeptCapacity? = nil
  /// How kept nodes wait (nil: stopped, as journals from before hibernation say).
  public var keepState: KeptState? = nil

  /// The gates, none when there are none.
  public var gates: [AnalysisGate] { analysis ?? [] }

  /// Replacing with surge creates the new node before removing the old one.
  public var usesSurge: Bool { maxSurge > 0 }
  /// Nodes replaced at the same time inside a wave.
  public var concurrency: Int { max(1, usesSurge ? maxSurge : maxUnavailable) }

  public init(
    canary: Int, waves: [Int], maxSurge: Int, maxUnavailable: Int, budget: Int, soakMilliseconds: Int = 0,
    healthTimeoutMilliseconds: Int = 300_000, onBudgetExceeded: UpgradeStrategy.OnBudgetExceeded = .rollback
  ) {
    self.canary = canary
    self.waves = waves
    self.maxSurge = maxSurge
    self.maxUnavailable = maxUnavailable
    self.budget = budget
    self.soakMilliseconds = soakMilliseconds
    self.healthTimeoutMilliseconds = healthTimeoutMilliseconds
    self.onBudgetExceeded = onBudgetExceeded
  }

  /// Resolves `strategy` for `nodes` nodes to replace out of a pool of `replicas`.
  ///
  /// Example: 6 nodes, canary 1, waves [2] → canary [1], waves [2, 2, 1].
  public static func resolve(_ strategy: UpgradeStrategy, budget: NodeQuantity, nodes: Int, replicas: Int) -> RolloutPolicy {
    let canary = min(nodes, strategy.canary.resolve(of: replicas, roundUp: true))
    var remaining = nodes - canary
    var waves: [Int] = []
    var sizes = strategy.waves.map { max(1, $0.resolve(of: replicas, roundUp: true)) }
    if sizes.isEmpty { sizes = [max(1, remaining)] }
    var i = 0
    while remaining > 0 {
      let size = min(remaining, sizes[min(i, sizes.count - 1)])
      waves.append(size)
      remaining -= size
      i += 1
    }
    var surge = strategy.maxSurge.resolve(of: replicas, roundUp: true)
    var unavailable = strategy.maxUnavailable.resolve(of: replicas, roundUp: false)
    if surge == 0 && unavailable == 0 { unavailable = 1 }
    surge = min(surge, max(nodes, 1))
    unavailable = min(unavailable, max(nodes, 1))
    var policy = RolloutPolicy(
      canary: canary, waves: waves, maxSurge: surge, maxUnavailable: unavailable,
      budget: budget.resolve(of: replicas, roundUp: false), soakMilliseconds: strategy.soak.milliseconds,
      healthTimeoutMilliseconds: strategy.healthTimeout.milliseconds, onBudgetExceeded: strategy.onBudgetExceeded)
    policy.analysis = strategy.analysis.isEmpty ? nil : strategy.analysis
    return policy
  }

  /// The nodes of each wave, canary first, in the order given (lowest index first).
  public func schedule(_ nodes: [String]) -> [[String]] {
    var result: [[String]] = []
    var rest = nodes[...]
    for size in ([canary] + waves) where size > 0 && !rest.isEmpty {
      result.append(Array(rest.prefix(size)))
      rest = rest.dropFirst(size)
    }
    if !rest.isEmpty { result.append(Array(rest)) }
    return result
  }

  /// Whether `failures` failed nodes exceed the budget (counted across the whole rollout).
  public func budgetExceeded(failures: Int) -> Bool { failures > budget }

  /// A rough duration for the plan: waves run one after another, nodes in a wave `concurrency`
  /// at a time, each taking `perNodeSeconds`, plus the soaks between waves.
  public func estimatedSeconds(perNodeSeconds: Double) -> Double {
    let waveSizes = ([canary] + waves).filter { $0 > 0 }
    let batches = waveSizes.map { Double(($0 + concurrency - 1) / concurrency) }.reduce(0, +)
    return batches * perNodeSeconds + Double(max(0, waveSizes.count - 1)) * Double(soakMilliseconds) / 1000
  }
}
