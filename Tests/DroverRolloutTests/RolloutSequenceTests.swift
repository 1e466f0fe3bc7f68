import DroverModel
import DroverRollout
import Foundation
import Testing

/// Whole rollouts, decision by decision, against a simulated fleet whose nodes succeed or fail as
/// scripted. Each run's log of decisions and reasons is compared with a golden file
/// (`DROVER_UPDATE_GOLDEN=1` rewrites them), and invariants are checked at every step.
@Suite struct RolloutSequenceTests {
  struct Scenario: CustomTestStringConvertible, Sendable {
    var name: String
    var replicas: Int
    var strategy: UpgradeStrategy
    var budget: NodeQuantity
    var failing: Set<String>
    var testDescription: String { name }
  }

  static let scenarios: [Scenario] = [
    Scenario(name: "6 replicas, canary 1, waves of 2, all healthy", replicas: 6, strategy: UpgradeStrategy(canary: .count(1), waves: [.count(2)]), budget: .count(0), failing: []),
    Scenario(name: "6 replicas, canary fails, budget 0", replicas: 6, strategy: UpgradeStrategy(canary: .count(1), waves: [.count(2)]), budget: .count(0), failing: ["web-1"]),
    Scenario(name: "6 replicas, budget 1, wave 2 exhausts it", replicas: 6, strategy: UpgradeStrategy(canary: .count(1), waves: [.count(2)]), budget: .count(1), failing: ["web-2", "web-5"]),
    Scenario(name: "4 replicas, budget exceeded with on_budget_exceeded pause", replicas: 4, strategy: UpgradeStrategy(canary: .count(1), waves: [.count(3)], onBudgetExceeded: .pause), budget: .count(0), failing: ["web-1"]),
    Scenario(name: "5 replicas, surge 2, soak 30s", replicas: 5, strategy: UpgradeStrategy(canary: .count(1), waves: [.count(4)], maxSurge: .count(2), soak: .seconds(30)), budget: .count(0), failing: []),
  ]

  static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

  /// Drives `nextRolloutStep` to the end, simulating each node's outcome.
  static func simulate(_ s: Scenario) -> [String] {
    let keys = (1...s.replicas).map { "web-\($0)" }
    let policy = RolloutPolicy.resolve(s.strategy, budget: s.budget, nodes: keys.count, replicas: s.replicas)
    var state = RolloutState(id: "r", pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: policy.schedule(keys), policy: policy)
    var log = ["schedule: " + state.schedule.map { $0.joined(separator: ",") }.joined(separator: " | ")]
    var soaked: Set<Int> = []
    var seq = 0
    func record(_ e: JournalRecord.Event, _ node: String? = nil, _ detail: String? = nil) {
      seq += 1
      state.apply(JournalRecord(seq: seq, time: Double(seq), rollout: "r", event: e, node: node, detail: detail))
    }
    for _ in 0..<100 {
      // Invariants at every step.
      // A violation fails this scenario (and its log says where), never the whole test process.
      if state.failed.count > policy.budget + policy.concurrency {
        log.append("INVARIANT BROKEN: \(state.failed.count) failures, more than budget \(policy.budget) + one batch of \(policy.concurrency)")
        Issue.record("never more failures than budget + one batch: \(state.failed.count) > \(policy.budget) + \(policy.concurrency)")
        return log
      }
      let decision = nextRolloutStep(state, soaked: soaked)
      switch decision {
      case .replace(let wave, let nodes):
        let batch = Array(nodes.prefix(policy.concurrency))
        log.append("wave \(wave): replace \(batch.joined(separator: ",")) (\(policy.concurrency) at a time)")
        for n in batch {
          if s.failing.contains(n) {
            record(.nodeFailed, n, "health check failed")
            log.append("  \(n) failed → failures \(state.failed.count), budget \(policy.budget)")
          } else {
            record(.nodeDone, n)
            log.append("  \(n) healthy")
          }
        }
      case .soak(let ms, let wave):
        log.append("soak \(ms / 1000)s before wave \(wave)")
        soaked.insert(wave)
      case .analyze(let wave, _):
        Issue.record("no gates in these scenarios, yet wave \(wave) was to be analysed")
        return log
      case .pause(let reason):
        log.append("pause: \(reason)")
        return log
      case .rollback(let reason, let nodes):
        if state.status != .rollingBack {
          log.append("rollback: \(reason)")
          record(.rollbackStarted)
        }
        guard let n = nodes.first else {
          log.append("rolled back")
          return log
        }
        record(.nodeRolledBack, n)
        log.append("  \(n) back on demo@v1")
      case .done:
        log.append("done: \(state.done.count) replaced")
        return log
      }
    }
    log.append("did not finish")
    return log
  }

  @Test(arguments: scenarios)
  func decisionsMatchGoldenLog(_ s: Scenario) throws {
    let text = Self.simulate(s).joined(separator: "\n") + "\n"
    let file = Self.golden.appendingPathComponent(s.name + ".golden")
    if ProcessInfo.processInfo.environment["DROVER_UPDATE_GOLDEN"] == "1" {
      try text.write(to: file, atomically: true, encoding: .utf8)
    }
    #expect(text == (try String(contentsOf: file, encoding: .utf8)))
    #expect(!text.contains("did not finish"))
  }

  @Test func repeatedFailureRecordsCountOnce() {
    let policy = RolloutPolicy(canary: 1, waves: [2], maxSurge: 1, maxUnavailable: 0, budget: 1)
    var state = RolloutState(id: "r", pool: "web", fromImage: "a", toImage: "b", schedule: [["web-1"], ["web-2", "web-3"]], policy: policy)
    for seq in 1...3 { state.apply(JournalRecord(seq: seq, time: 0, rollout: "r", event: .nodeFailed, node: "web-1", detail: "x")) }
    #expect(state.failed.count == 1)
    #expect(!state.budgetExceeded)
    #expect(nextRolloutStep(state) == .replace(wave: 1, nodes: ["web-2", "web-3"]))
  }

  @Test func abortRollsBackWhatWasReplaced() {
    let policy = RolloutPolicy(canary: 1, waves: [2], maxSurge: 1, maxUnavailable: 0, budget: 5)
    var state = RolloutState(id: "r", pool: "web", fromImage: "a", toImage: "b", schedule: [["web-1"], ["web-2", "web-3"]], policy: policy)
    state.apply(JournalRecord(seq: 1, time: 0, rollout: "r", event: .nodeDone, node: "web-1"))
    state.apply(JournalRecord(seq: 2, time: 0, rollout: "r", event: .abortRequested))
    #expect(nextRolloutStep(state) == .rollback(reason: "aborted by request", nodes: ["web-1"]))
  }

  @Test func pauseRequestPausesAndResumeContinues() {
    let policy = RolloutPolicy(canary: 1, waves: [2], maxSurge: 1, maxUnavailable: 0, budget: 0)
    var state = RolloutState(id: "r", pool: "web", fromImage: "a", toImage: "b", schedule: [["web-1"], ["web-2", "web-3"]], policy: policy)
    state.apply(JournalRecord(seq: 1, time: 0, rollout: "r", event: .pauseRequested))
    #expect(nextRolloutStep(state) == .pause(reason: "paused by request"))
    state.apply(JournalRecord(seq: 2, time: 0, rollout: "r", event: .paused))
    state.apply(JournalRecord(seq: 3, time: 0, rollout: "r", event: .resumed))
    #expect(state.status == .running)
    #expect(nextRolloutStep(state) == .replace(wave: 0, nodes: ["web-1"]))
  }
}
