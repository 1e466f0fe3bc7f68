import DroverModel
import DroverRollout
import Testing

/// Wave selection, surge/unavailable arithmetic and budget accounting as tables.
@Suite struct RolloutPolicyTests {
  static func strategy(canary: NodeQuantity = .count(1), waves: [NodeQuantity] = [.percent(50)], surge: NodeQuantity = .count(1), unavailable: NodeQuantity = .count(0)) -> UpgradeStrategy {
    UpgradeStrategy(canary: canary, waves: waves, maxSurge: surge, maxUnavailable: unavailable)
  }

  @Test(arguments: [
    // (replicas, canary, waves, expected canary, expected waves)
    (6, NodeQuantity.count(1), [NodeQuantity.count(2)], 1, [2, 2, 1]),
    (6, .count(0), [.count(3)], 0, [3, 3]),
    (10, .percent(10), [.percent(25), .percent(50)], 1, [3, 5, 1]),
    (3, .count(1), [.count(2)], 1, [2]),
    (1, .count(1), [.percent(50)], 1, []),
    (4, .count(5), [.count(1)], 4, []),
    (7, .percent(1), [.percent(100)], 1, [6]),
  ])
  func waves(replicas: Int, canary: NodeQuantity, waves: [NodeQuantity], expectedCanary: Int, expectedWaves: [Int]) {
    let p = RolloutPolicy.resolve(Self.strategy(canary: canary, waves: waves), budget: .count(0), nodes: replicas, replicas: replicas)
    #expect(p.canary == expectedCanary)
    #expect(p.waves == expectedWaves)
    #expect(p.canary + p.waves.reduce(0, +) == replicas, "every node is scheduled exactly once")
  }

  @Test(arguments: [
    // (replicas, surge, unavailable, expected surge, expected unavailable)
    (10, NodeQuantity.percent(25), NodeQuantity.percent(25), 3, 2),  // surge rounds up, unavailable down
    (10, .count(0), .count(0), 0, 1),  // both zero: unavailable becomes 1
    (3, .percent(10), .count(0), 1, 0),
    (4, .count(0), .percent(50), 0, 2),
    (2, .count(5), .count(0), 2, 0),  // never more than the nodes to replace
  ])
  func surgeAndUnavailable(replicas: Int, surge: NodeQuantity, unavailable: NodeQuantity, s: Int, u: Int) {
    let p = RolloutPolicy.resolve(Self.strategy(surge: surge, unavailable: unavailable), budget: .count(0), nodes: replicas, replicas: replicas)
    #expect(p.maxSurge == s && p.maxUnavailable == u)
    #expect(p.usesSurge == (s > 0))
    #expect(p.concurrency == max(1, s > 0 ? s : u))
  }

  @Test(arguments: [
    (NodeQuantity.count(0), 10, 0), (.count(2), 10, 2), (.percent(25), 10, 2), (.percent(10), 5, 0), (.percent(100), 3, 3),
  ])
  func budgetRoundsDown(budget: NodeQuantity, replicas: Int, expected: Int) {
    let p = RolloutPolicy.resolve(Self.strategy(), budget: budget, nodes: replicas, replicas: replicas)
    #expect(p.budget == expected)
    #expect(!p.budgetExceeded(failures: expected))
    #expect(p.budgetExceeded(failures: expected + 1))
  }

  @Test func scheduleIsCanaryThenWavesInIndexOrder() {
    let p = RolloutPolicy.resolve(Self.strategy(waves: [.count(2)]), budget: .count(0), nodes: 6, replicas: 6)
    #expect(p.schedule((1...6).map { "web-\($0)" }) == [["web-1"], ["web-2", "web-3"], ["web-4", "web-5"], ["web-6"]])
  }

  @Test func estimateCountsBatchesAndSoaks() {
    var p = RolloutPolicy(canary: 1, waves: [2, 2], maxSurge: 1, maxUnavailable: 0, budget: 0, soakMilliseconds: 10_000)
    #expect(p.estimatedSeconds(perNodeSeconds: 10) == 5 * 10 + 2 * 10)
    p.maxSurge = 2
    #expect(p.estimatedSeconds(perNodeSeconds: 10) == 3 * 10 + 2 * 10)
  }
}
