import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Synchronization
import Testing

/// #41 in-process: a rollout whose lock is lost at any one of its fence checks makes no change to
/// the host after that check — not one create, delete or record update — and the next runner
/// (a new grant) finishes it without a duplicate or an orphan. One round trip per step.
@Suite struct FencedRunnerTests {
  typealias R = RolloutRunnerFakeHostTests

  /// A shared state that only answers fence checks: the first `passes` prove the lock, every later
  /// one finds it gone. It notes how many host changes there were when the lock went.
  final class LosingState: SharedStateBackend, @unchecked Sendable {
    let location = "fake://state"
    let passes: Int
    let host: FakeHost
    let book = Mutex<(checks: Int, changesAtLoss: Int?)>((0, nil))

    init(passes: Int, host: FakeHost) {
      self.passes = passes
      self.host = host
    }

    func checkFence(_ tokens: [String: Int64], what: String) throws {
      let lost = book.withLock { b -> Bool in
        b.checks += 1
        if b.checks > passes {
          if b.changesAtLoss == nil { b.changesAtLoss = host.calls.count }
          return true
        }
        return false
      }
      if lost { throw Diagnostic.error("state.fenced", "stopped before \(what): the lock is gone", subject: "state") }
    }

    func acquireLock(name: String, holder: LockHolder, timeout: Double) throws -> (any SharedLock)? { throw unused() }
    func lockHolder(name: String) throws -> LockHolder? { nil }
    func journalRecords(pool: String, after: Int) throws -> [JournalRecord] { throw unused() }
    func appendJournal(pool: String, _ make: (Int, Double) -> JournalRecord) throws -> JournalRecord { throw unused() }
    func journalPools() throws -> [String] { [] }
    func importJournal(pool: String, records: [JournalRecord]) throws { throw unused() }
    func healLedger(pool: String, maxBytes: Int) throws -> [UInt8]? { nil }
    func writeHealLedger(pool: String, document: [UInt8]) throws { throw unused() }
    func lockLease(name: String) throws -> LockLease? { nil }
    func endExpiredHolder(name: String, session: Int64) throws -> Bool { false }
    func unused() -> Diagnostic { Diagnostic.error("test", "not used by the runner's fence") }
  }

  static func runner(_ fleet: R.Fleet, _ journal: RolloutJournal, fence: Fence) -> RolloutRunner {
    RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: journal,
      hooks: .init(prober: FakeProber(), drainer: fleet.drainer, shouldStop: { false }, sleep: { _ in }, fence: fence))
  }

  /// The fence checks a clean rollout of three nodes makes (one per step, one more per create, one per mark cleared).
  static func cleanChecks() throws -> (checks: Int, changes: Int) {
    let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let state = LosingState(passes: .max, host: fleet.host)
    let preview = try #require(try fleet.plan().rollouts.first)
    let outcome = try runner(fleet, try fleet.journal(), fence: Fence(backend: state, tokens: ["web": 1])).run(preview)
    #expect(outcome.state.status == .completed)
    return (state.book.withLock { $0.checks }, fleet.host.calls.count)
  }

  /// The plain executor (a scale-up's creates, a scale-down's deletes): each create is proved
  /// before its disk is prepared and again before its define, each delete before it runs; once the
  /// lock is lost nothing more changes, and every action not done is reported.
  @Test func theExecutorChangesNothingAfterTheLockIsLost() throws {
    // 3 → 6 replicas: three creates, each proved twice; 3 → 1: two deletes, each proved once.
    for (replicas, actions, perAction) in [(6, 3, 2), (1, 2, 1)] {
      for passes in 0...(actions * perAction) {
        let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
        fleet.pool.replicas = replicas
        let plan = try fleet.plan()
        #expect(plan.actions.count == actions, "\(plan.actions.map { "\($0.kind) \($0.node)" })")
        let state = LosingState(passes: passes, host: fleet.host)
        // One action at a time: "nothing after the loss" is then exact (side by side, an action
        // proved just before another's proof failed still runs — that is the fence's contract).
        let executor = Executor(backends: [R.uri: fleet.host], parallelismPerHost: 1, fence: Fence(backend: state, tokens: ["web": 1]))
        let result = executor.apply(plan)
        let changes = fleet.host.calls.count
        if let atLoss = state.book.withLock({ $0.changesAtLoss }) {
          #expect(changes == atLoss, "\(replicas) replicas, lost at check \(passes + 1): \(fleet.host.calls)")
          #expect(result.failed.contains { $0.error.code == "state.fenced" })
        }
        #expect(result.done.count + result.failed.count + result.skipped.count == actions, "every action accounted for")
        #expect(changes <= passes / perAction , "at most one change per proved action: \(fleet.host.calls)")
      }
    }
  }

  @Test func eachStepIsFencedOnceAndNothingChangesAfterTheLockIsLost() throws {
    let clean = try Self.cleanChecks()
    // Per node (3): cordon, drain, create (proved again once its disk is prepared), health, remove,
    // uncordon; then each node's mark cleared.
    #expect(clean.checks == 3 * 7 + 3, "one round trip per step: \(clean.checks)")
    #expect(clean.changes > 0)
    for passes in 0..<clean.checks {
      let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
      fleet.pool.image = ImageRef(parsing: "demo@v2")!
      let state = LosingState(passes: passes, host: fleet.host)
      let fence = Fence(backend: state, tokens: ["web": 1])
      let preview = try #require(try fleet.plan().rollouts.first)
      let journal = try fleet.journal()
      journal.fenced = fence
      _ = try? Self.runner(fleet, journal, fence: fence).run(preview)
      let atLoss = try #require(state.book.withLock { $0.changesAtLoss }, "lost at check \(passes + 1)")
      #expect(fleet.host.calls.count == atLoss, "lost at check \(passes + 1): changes after it: \(fleet.host.calls.dropFirst(atLoss))")
      // Another runner, with a grant of its own, finishes the rollout from the journal.
      let resumed = try #require(try fleet.plan().rollouts.first, "lost at check \(passes + 1): the rollout is left to resume")
      #expect(resumed.resumes != nil)
      let next = try Self.runner(fleet, try fleet.journal(), fence: Fence(backend: LosingState(passes: .max, host: fleet.host), tokens: ["web": 2]))
        .run(resumed)
      #expect(next.state.status == .completed, "lost at check \(passes + 1)")
      try R.expectConverged(fleet, "lost at check \(passes + 1)")
      #expect(fleet.shape == ["web-1-g2 g2 demo@v2", "web-2-g2 g2 demo@v2", "web-3-g2 g2 demo@v2"], "lost at check \(passes + 1): \(fleet.shape)")
    }
  }
}
