import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Testing

/// `RolloutRunner` sequences in-process, on `FakeHost` (domains in memory, real overlay files),
/// with a real journal in a private folder: rollouts, rollbacks, heals, and a crash after every
/// boundary (each durable journal record, each host change) followed by a resume that must end
/// where the uncrashed run ended. The same paths run on libvirt's test driver in the CLI tests
/// (`Day2ModelTests` kills a real `drover apply`) and on real VMs in the system tests.
@Suite struct RolloutRunnerFakeHostTests {
  static let project = "fake"
  static let uri = "fake:///one"
  static let keyring = Keyring(project: project, key: RecordKey(bytes: Array(repeating: 7, count: 32), project: project))

  /// A fleet of `replicas` nodes on `demo@v1`, generation 1, as an earlier apply left them.
  final class Fleet: @unchecked Sendable {
    let host: FakeHost
    let drainer: FakeDrainer
    let state: String
    var pool: PoolSpec
    var crash: SimulatedCrash

    init(replicas: Int, strategy: UpgradeStrategy, budget: NodeQuantity = .count(0)) throws {
      crash = SimulatedCrash()
      host = try FakeHost(uri: RolloutRunnerFakeHostTests.uri, project: RolloutRunnerFakeHostTests.project)
      var drainerCrash: () -> SimulatedCrash = { SimulatedCrash() }
      drainer = FakeDrainer(crash: { drainerCrash() })
      state = FileManager.default.temporaryDirectory.appendingPathComponent("drover-runner-\(UUID().uuidString.prefix(8))").path
      try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      pool = PoolSpec(name: "web", hosts: [RolloutRunnerFakeHostTests.uri], replicas: replicas, image: ImageRef(parsing: "demo@v1")!)
      pool.upgrade = strategy
      pool.errorBudget = budget
      for i in 1...replicas {
        try host.seed(desiredOwnership(pool, index: i, digest: "d1", generation: 1, project: RolloutRunnerFakeHostTests.project))
      }
      drainerCrash = { [unowned self] in self.crash }
    }

    deinit { try? FileManager.default.removeItem(atPath: state) }

    /// A new "process": a fresh crash (at boundary `at`), host and drainer tied to it.
    func restart(crashAt: Int?) {
      crash = SimulatedCrash(at: crashAt)
      host.crash = crash
    }

    func journal() throws -> RolloutJournal {
      let j = try RolloutJournal(directory: "\(state)/journal", pool: pool.name, keyring: RolloutRunnerFakeHostTests.keyring, state: .local)
      j.faults = crash
      return j
    }

    func runner(_ journal: RolloutJournal, prober: FakeProber, shouldStop: @escaping @Sendable () -> Bool = { false }) -> RolloutRunner {
      RolloutRunner(
        pool: pool, project: RolloutRunnerFakeHostTests.project, backends: [RolloutRunnerFakeHostTests.uri: host], journal: journal,
        hooks: .init(prober: prober, drainer: drainer, shouldStop: shouldStop, sleep: { _ in }))
    }

    /// The plan for the pool as it is declared now, made by the real planner from what the host shows.
    func plan() throws -> Plan {
      var options = PlanOptions()
      options.project = RolloutRunnerFakeHostTests.project
      options.keyHeld = true
      options.imageDigests = ["demo@v1": "d1", "demo@v2": "d2"]
      options.activeRollouts = try journal().active().map { [pool.name: $0] } ?? [:]
      let (plan, problems) = makePlan(pools: [pool], observed: ObservedWorld(hosts: [RolloutRunnerFakeHostTests.uri: try host.observe()]), options: options)
      #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
      return plan
    }

    /// The world as one line per domain, sorted: name, generation, image, running.
    var shape: [String] {
      host.domains.map { "\($0.name) g\($0.ownership.generation) \($0.ownership.image)\($0.ownership.healthFailed ? " failed" : "")" }.sorted()
    }
  }

  /// Runs the pool's rollout to its end, crashing after boundary `crashAt` and then resuming in a
  /// new "process" as `drover apply` would: its plan resumes the journaled rollout.
  static func roll(_ fleet: Fleet, prober: FakeProber, crashAt: Int? = nil) throws -> (outcome: RolloutOutcome?, boundaries: Int) {
    fleet.restart(crashAt: crashAt)
    let preview = try #require(try fleet.plan().rollouts.first, "a rollout was planned")
    var outcome: RolloutOutcome?
    do { outcome = try fleet.runner(try fleet.journal(), prober: prober).run(preview) } catch {
      #expect(crashAt != nil, "only a crash stops the run: \(error)")
      #expect(fleet.crash.crashedAt != nil, "the run threw without a crash: \(error)")
    }
    let boundaries = fleet.crash.boundaries
    if crashAt != nil && outcome == nil {
      fleet.restart(crashAt: nil)
      // What the next apply does: resume what the journal holds, or see nothing left to do.
      if try fleet.journal().active() != nil, let resumed = try fleet.plan().rollouts.first {
        #expect(resumed.resumes != nil, "after a crash the plan resumes the journaled rollout, never starts another")
        outcome = try fleet.runner(try fleet.journal(), prober: prober).run(resumed)
      }
    }
    return (outcome, boundaries)
  }

  /// After a rollout, whatever happened on the way: the plan has nothing to do but remove an
  /// overlay a crash orphaned between undefine and delete; no node is left cordoned; every
  /// domain's overlay is on disk.
  static func expectConverged(_ fleet: Fleet, _ label: String, rolledBack: Bool = false) throws {
    let plan = try fleet.plan()
    if rolledBack {
      // The spec still asks for the new image: the next plan starts a new rollout, never resumes.
      #expect(plan.rollouts.allSatisfy { $0.resumes == nil }, "\(label): a rollout is left in progress")
    } else {
      #expect(plan.actions.allSatisfy { $0.kind == .removeOverlay }, "\(label): left to do: \(plan.actions.map { "\($0.kind) \($0.node)" })")
      #expect(plan.rollouts.isEmpty, "\(label): a rollout is left")
    }
    // A kept node (#45) stays out of service, cordoned, until a rollback starts it.
    let cordoned = fleet.drainer.leftCordoned(fleet.host.domains.filter { $0.ownership.kept == nil })
    #expect(cordoned.isEmpty, "\(label): left cordoned: \(cordoned)")
    let files = Set(fleet.host.overlayFiles)
    for d in fleet.host.domains { #expect(files.contains(fleet.host.overlay(d.ownership)), "\(label): \(d.name) has no overlay on disk") }
  }

  static let surge = UpgradeStrategy(canary: .count(1), waves: [.count(2)], maxSurge: .count(1), maxUnavailable: .count(0))
  static let inPlace = UpgradeStrategy(canary: .count(1), waves: [.count(2)], maxSurge: .count(0), maxUnavailable: .count(1))

  @Test func aRolloutReplacesEveryNodeCanaryFirst() throws {
    let fleet = try Fleet(replicas: 3, strategy: Self.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try Self.roll(fleet, prober: FakeProber())
    #expect(outcome?.state.status == .completed)
    #expect(outcome?.created == 3 && outcome?.removed == 3)
    #expect(fleet.shape == ["web-1-g2 g2 demo@v2", "web-2-g2 g2 demo@v2", "web-3-g2 g2 demo@v2"])
    #expect(fleet.host.calls.first == "create web-1-g2 g2 demo@v2", "the canary first: \(fleet.host.calls)")
    #expect(Array(fleet.drainer.calls.prefix(2)) == ["cordon web-1", "drain web-1"], "\(fleet.drainer.calls)")
    try Self.expectConverged(fleet, "clean run")
  }

  @Test func aSickCanaryIsRemovedAndTheOriginalServesAgain() throws {
    let fleet = try Fleet(replicas: 3, strategy: Self.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try Self.roll(fleet, prober: FakeProber(sickImages: ["demo@v2"]))
    #expect(outcome?.state.status == .rolledBack)
    #expect(outcome?.state.failed.keys.sorted() == ["web-1"])
    #expect(fleet.shape == ["web-1 g1 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"], "surge: the original never left")
    #expect(fleet.host.calls == ["create web-1-g2 g2 demo@v2", "delete web-1-g2"])
    #expect(fleet.drainer.cordoned.isEmpty, "the original is back in service")
  }

  @Test func inPlaceASickCanaryIsRebuiltOnTheOldImage() throws {
    let fleet = try Fleet(replicas: 3, strategy: Self.inPlace)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try Self.roll(fleet, prober: FakeProber(sickImages: ["demo@v2"]))
    #expect(outcome?.state.status == .rolledBack)
    #expect(fleet.shape == ["web-1 g3 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"])
    // The failed replacement's record says so (update), the rollback rebuilds it on v1, and the
    // rollout's marks are cleared at the end (update).
    #expect(fleet.host.calls == ["delete web-1", "create web-1 g2 demo@v2", "update web-1", "delete web-1", "create web-1 g3 demo@v1", "update web-1"])
  }

  /// A stop (Ctrl-C) once the rollback has rebuilt the node pauses the rollout; the next plan
  /// resumes it (the rebuild is the rollback's own, by its sealed mark) and it ends rolled back.
  @Test func aRollbackPausedAfterItsRebuildResumes() throws {
    let fleet = try Fleet(replicas: 2, strategy: Self.inPlace)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    fleet.restart(crashAt: nil)
    let sick = FakeProber(sickImages: ["demo@v2"])
    let preview = try #require(try fleet.plan().rollouts.first)
    let host = fleet.host
    let stopped = try fleet.runner(try fleet.journal(), prober: sick) { host.calls.contains("create web-1 g3 demo@v1") }.run(preview)
    #expect(stopped.interrupted, "\(stopped.summary)")
    #expect(try fleet.journal().rollouts().last?.status == .paused)
    let resumed = try #require(try fleet.plan().rollouts.first, "the paused rollback is resumed, not refused")
    #expect(resumed.resumes == stopped.state.id)
    let outcome = try fleet.runner(try fleet.journal(), prober: sick).run(resumed)
    #expect(outcome.state.status == .rolledBack)
    #expect(fleet.shape == ["web-1 g3 demo@v1", "web-2 g1 demo@v1"])
  }

  @Test func aDrainThatTimesOutFailsTheNodeAndPutsItBack() throws {
    let fleet = try Fleet(replicas: 2, strategy: Self.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    fleet.drainer.timeOut(["web-1"])
    let (outcome, _) = try Self.roll(fleet, prober: FakeProber())
    #expect(outcome?.state.failed["web-1"]?.contains("timed out") == true)
    #expect(fleet.host.calls.isEmpty, "nothing was created or removed: \(fleet.host.calls)")
    #expect(fleet.drainer.cordoned.isEmpty, "on_failure uncordon put it back")
  }

  /// With slow creates (an injected delay), a wave's nodes are replaced side by side up to the
  /// policy's concurrency (max_surge 2 here), never more; the canary alone.
  @Test func aWaveRunsItsNodesSideBySideUpToItsConcurrency() throws {
    let wide = UpgradeStrategy(canary: .count(1), waves: [.count(4)], maxSurge: .count(2), maxUnavailable: .count(0))
    let fleet = try Fleet(replicas: 5, strategy: wide)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    fleet.host.slowCreates(0.2)
    let (outcome, _) = try Self.roll(fleet, prober: FakeProber())
    #expect(outcome?.state.status == .completed)
    #expect(fleet.host.mostCreatesAtOnce == 2, "creates at once: \(fleet.host.mostCreatesAtOnce)")
    #expect(fleet.host.calls.first == "create web-1-g2 g2 demo@v2")
    try Self.expectConverged(fleet, "wide wave")
  }

  @Test func aHealRebuildsItsNodesFromTheirOwnRecords() throws {
    let fleet = try Fleet(replicas: 2, strategy: Self.surge)
    fleet.restart(crashAt: nil)
    let dead = try #require(fleet.host.domains.first { $0.name == "web-2" })
    var to = dead.ownership
    to.generation = 2
    var node = RolloutNode(key: "web-2", index: 2, host: Self.uri, oldName: "web-2", oldUUID: dead.uuid, from: dead.ownership, to: to, reason: "heal: dead")
    node.heal = .skip(reason: "the node is shut off")
    let strategy = UpgradeStrategy(canary: .count(0), waves: [.count(1)], maxSurge: .count(0), maxUnavailable: .count(1), onBudgetExceeded: .pause)
    let policy = RolloutPolicy.resolve(strategy, budget: .count(1), nodes: 1, replicas: 1)
    let preview = RolloutPreview(
      pool: "web", fromImage: "demo@v1", toImage: "demo@v1", schedule: policy.schedule(["web-2"]), policy: policy, drainOnTimeout: "force",
      estimatedSeconds: 0, nodes: [node], resumes: nil, kind: .heal)
    let outcome = try fleet.runner(try fleet.journal(), prober: FakeProber()).run(preview)
    #expect(outcome.state.status == .completed)
    #expect(fleet.shape == ["web-1 g1 demo@v1", "web-2 g2 demo@v1"])
    #expect(fleet.drainer.calls == ["cordon web-2", "uncordon web-2"], "the dead node's drain was skipped: \(fleet.drainer.calls)")
    try Self.expectConverged(fleet, "heal")
  }

  /// The seeded day-2 model test's crashes, in-process: every boundary of a whole rollout.
  @Test(arguments: ["surge", "in place", "in place, sick canary"])
  func aCrashAtEveryBoundaryResumesToTheSameEnd(_ kind: String) throws {
    let strategy = kind == "surge" ? Self.surge : Self.inPlace
    let prober = kind.contains("sick") ? FakeProber(sickImages: ["demo@v2"]) : FakeProber()
    let clean = try Fleet(replicas: 3, strategy: strategy)
    clean.pool.image = ImageRef(parsing: "demo@v2")!
    let (cleanOutcome, boundaries) = try Self.roll(clean, prober: prober)
    #expect(boundaries > 10, "a rollout of 3 nodes crosses many boundaries: \(boundaries)")
    for at in 1...boundaries {
      let fleet = try Fleet(replicas: 3, strategy: strategy)
      fleet.pool.image = ImageRef(parsing: "demo@v2")!
      _ = try Self.roll(fleet, prober: prober, crashAt: at)
      let label = "\(kind), crash at boundary \(at) of \(boundaries)"
      // How the rollout ended is what its journal says (a crash after its last record leaves
      // nothing to resume).
      let ended = try fleet.journal().rollouts().last
      #expect(ended?.status == cleanOutcome?.state.status, "\(label)")
      #expect(ended?.failed.keys.sorted() == cleanOutcome?.state.failed.keys.sorted(), "\(label): failures counted once")
      #expect(try fleet.journal().rollouts().count == 1, "\(label): one rollout, resumed, never a second")
      // Names may differ (a surge replacement resumed after its original went takes the free
      // name); generations, images and the number of nodes may not.
      func images(_ f: Fleet) -> [String] { f.host.domains.map { "\($0.ownership.key) g\($0.ownership.generation) \($0.ownership.image)" }.sorted() }
      #expect(images(fleet) == images(clean), "\(label)")
      try Self.expectConverged(fleet, label, rolledBack: cleanOutcome?.state.status == .rolledBack)
    }
  }
}
