import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Testing

/// Warm rollback (#45) on `FakeHost`: `keep_previous` parks the replaced nodes shut off with
/// their disks; a rollback (the budget spent, or `drover rollout undo` after completion) starts
/// them again instead of rebuilding; kill points at every boundary resume to the same end.
@Suite struct WarmRollbackRunnerTests {
  typealias R = RolloutRunnerFakeHostTests

  static func keeping(_ base: UpgradeStrategy, _ nodes: Int = 3) -> UpgradeStrategy {
    var s = base
    s.keepPrevious = KeepPrevious(nodes: .count(nodes), duration: .minutes(60), shutdownTimeout: .seconds(1))
    return s
  }

  /// name generation image, and "kept" / "off" for a kept or stopped domain.
  static func shape(_ fleet: R.Fleet) -> [String] {
    fleet.host.domains.map { d in
      "\(d.name) g\(d.ownership.generation) \(d.ownership.image)" + (d.ownership.kept != nil ? " kept" : "") + (d.running ? "" : " off")
    }.sorted()
  }

  @Test func replacedNodesAreKeptShutOffAndTheRolloutCompletes() throws {
    let fleet = try R.Fleet(replicas: 3, strategy: Self.keeping(R.surge, 2))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let preview = try #require(try fleet.plan().rollouts.first)
    #expect(preview.nodes.map { $0.keep == true } == [false, true, true], "the last two replaced are kept")
    let (outcome, _) = try R.roll(fleet, prober: FakeProber())
    #expect(outcome?.state.status == .completed, "the rollout completes: kept nodes are not an active rollout")
    #expect(outcome?.removed == 1)
    #expect(
      Self.shape(fleet) == [
        "web-1-g2 g2 demo@v2", "web-2 g1 demo@v1 kept off", "web-2-g2 g2 demo@v2", "web-3 g1 demo@v1 kept off", "web-3-g2 g2 demo@v2",
      ])
    let plan = try fleet.plan()
    #expect(plan.actions.isEmpty && plan.rollouts.isEmpty, "kept nodes are no drift, no duplicate, no start: \(plan.actions.map(\.reason))")
    #expect(plan.kept?.map(\.node) == ["web-2", "web-3"])
    // Only serving nodes were drained, and none is left cordoned.
    #expect(fleet.drainer.leftCordoned(fleet.host.domains.filter { $0.ownership.kept == nil }).isEmpty)
  }

  @Test func aBudgetExceededStartsTheKeptNodeInsteadOfRebuildingIt() throws {
    // In place: the old node is kept before its replacement is made; the sick replacement fails.
    let fleet = try R.Fleet(replicas: 3, strategy: Self.keeping(R.inPlace))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try R.roll(fleet, prober: FakeProber(sickImages: ["demo@v2"]))
    #expect(outcome?.state.status == .rolledBack)
    #expect(Self.shape(fleet) == ["web-1 g1 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"], "the very domains, serving again")
    let creates = fleet.host.calls.filter { $0.hasPrefix("create") }
    #expect(creates == ["create web-1-g2 g2 demo@v2"], "the rollback created nothing: \(fleet.host.calls)")
    #expect(fleet.host.calls.contains("revive web-1") && fleet.host.calls.contains("delete web-1-g2"), "\(fleet.host.calls)")
    try R.expectConverged(fleet, "warm rollback", rolledBack: true)
  }

  @Test func undoAfterCompletionStartsTheKeptNodesAndRebuildsTheOthers() throws {
    let fleet = try R.Fleet(replicas: 3, strategy: Self.keeping(R.surge, 2))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try R.roll(fleet, prober: FakeProber())
    let id = try #require(outcome?.state.id)
    let keptUUIDs = Set(fleet.host.domains.filter { $0.ownership.kept != nil }.map(\.uuid))
    // `drover rollout undo`: the completed rollout rolls back.
    try fleet.journal().append(id, .rollbackStarted, detail: "undo requested")
    let resumed = try #require(try fleet.plan().rollouts.first, "the undo is resumed by the plan")
    #expect(resumed.resumes == id)
    let undone = try fleet.runner(try fleet.journal(), prober: FakeProber()).run(resumed)
    #expect(undone.state.status == .rolledBack && undone.state.undone)
    #expect(undone.created == 1, "only web-1, whose original was not kept, is rebuilt")
    #expect(Set(fleet.host.domains.map(\.uuid)).isSuperset(of: keptUUIDs), "the kept domains themselves serve again")
    #expect(Self.shape(fleet) == ["web-1 g3 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"])
    #expect(fleet.host.domains.allSatisfy { $0.ownership.rollout == nil }, "marks cleared")
  }

  /// A hibernated kept node (the default) resumes from its saved memory: its record says
  /// `restored`, and its health is every check but the console's boot markers (it did not boot);
  /// a stopped one boots and runs them all.
  @Test(arguments: [KeptState.hibernated, .stopped])
  func aRestoredNodeIsNotAskedForItsBootMarkers(_ how: KeptState) throws {
    var strategy = Self.keeping(R.surge, 1)
    strategy.keepPrevious?.state = how
    let fleet = try R.Fleet(replicas: 1, strategy: strategy)
    fleet.pool.health = [
      HealthCheckSpec(kind: .console(pattern: "READY"), timeout: .seconds(5), interval: .seconds(1), retries: 0),
      HealthCheckSpec(kind: .tcp(port: 22), timeout: .seconds(5), interval: .seconds(1), retries: 0),
    ]
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try R.roll(fleet, prober: FakeProber())
    let kept = try #require(fleet.host.domains.first { $0.ownership.kept != nil })
    #expect(kept.ownership.kept?.state == (how == .hibernated ? .hibernated : nil), "the record says how it waits")
    try fleet.journal().append(try #require(outcome?.state.id), .rollbackStarted, detail: "undo requested")
    let log = ProbeLog()
    let undone = try fleet.runner(try fleet.journal(), prober: FakeProber(log: log)).run(try #require(try fleet.plan().rollouts.first))
    #expect(undone.state.status == .rolledBack)
    let probed = log.lines.withLock { $0 }
    let expected = how == .hibernated ? "web-1: tcp check :22" : "web-1: console check /READY/, tcp check :22"
    #expect(probed.first == expected, "\(probed)")
    #expect(Self.shape(fleet) == ["web-1 g1 demo@v1"])
  }

  /// `capacity: disk-only`: a kept node gave its vCPU and memory back to its host. When the host
  /// no longer has room for it, the rollback fails closed for that node, naming the host: nothing
  /// is started, it stays kept, its replacement serves on, and the undo does not end as asked.
  @Test func aDiskOnlyKeptNodeThatNoLongerFitsStaysKeptAndItsReplacementServesOn() throws {
    let fleet = try R.Fleet(replicas: 1, strategy: Self.keeping(R.surge, 1))
    fleet.pool.keptCapacity = .diskOnly
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try R.roll(fleet, prober: FakeProber())
    #expect(fleet.host.domains.first { $0.ownership.kept != nil }?.ownership.kept?.reserves == false, "kept disk-only")
    // Room for the serving node alone now (256 MiB each).
    fleet.host.capacity = HostCapacity(cpus: 4, memoryBytes: 256 << 20)
    try fleet.journal().append(try #require(outcome?.state.id), .rollbackStarted, detail: "undo requested")
    let undone = try fleet.runner(try fleet.journal(), prober: FakeProber()).run(try #require(try fleet.plan().rollouts.first))
    #expect(undone.state.status == .rolledBack && !undone.state.endedAsAsked)
    let why = undone.state.rollbackFailures["web-1"] ?? ""
    #expect(why.contains("does not fit on \(R.uri)") && why.contains("it stays kept"), "\(undone.state.rollbackFailures)")
    #expect(!fleet.host.calls.contains { $0.hasPrefix("revive") }, "nothing started: \(fleet.host.calls)")
    #expect(Self.shape(fleet) == ["web-1 g1 demo@v1 kept off", "web-1-g2 g2 demo@v2"])
  }

  @Test func aKeptNodeThatDoesNotComeBackIsKeptAgainAndItsReplacementServesOn() throws {
    let fleet = try R.Fleet(replicas: 1, strategy: Self.keeping(R.surge, 1))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let (outcome, _) = try R.roll(fleet, prober: FakeProber())
    let id = try #require(outcome?.state.id)
    try fleet.journal().append(id, .rollbackStarted, detail: "undo requested")
    let resumed = try #require(try fleet.plan().rollouts.first)
    let undone = try fleet.runner(try fleet.journal(), prober: FakeProber(sickImages: ["demo@v1"])).run(resumed)
    #expect(undone.state.status == .rolledBack)
    #expect(Self.shape(fleet) == ["web-1 g1 demo@v1 kept off", "web-1-g2 g2 demo@v2"], "nothing worse than before the undo")
  }

  @Test func planRemovesKeptNodesWhenTheirTimeIsUpOnFinishAndOnTheNextRollout() throws {
    let fleet = try R.Fleet(replicas: 2, strategy: Self.keeping(R.surge, 2))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    _ = try R.roll(fleet, prober: FakeProber())
    let observed = ObservedWorld(hosts: [R.uri: try fleet.host.observe()])
    var options = PlanOptions(imageDigests: ["demo@v1": "d1", "demo@v2": "d2", "demo@v3": "d3"], project: R.project)
    options.keyHeld = true
    options.now = Date().timeIntervalSince1970
    #expect(makePlan(pools: [fleet.pool], observed: observed, options: options).0.actions.isEmpty)
    options.now += 2 * 3600
    let expired = makePlan(pools: [fleet.pool], observed: observed, options: options).0
    #expect(expired.actions.map { "\($0.kind) \($0.node)" } == ["delete web-1", "delete web-2"])
    #expect(expired.actions.allSatisfy { $0.reason.contains("its time has passed") })
    options.now -= 2 * 3600
    options.finishKept = true
    var v3 = fleet.pool
    v3.image = ImageRef(parsing: "demo@v3")!
    let finish = makePlan(pools: [v3], observed: observed, options: options).0
    #expect(finish.actions.map { "\($0.kind) \($0.node)" } == ["delete web-1", "delete web-2"] && finish.rollouts.isEmpty, "finish does nothing else")
    options.finishKept = false
    let next = makePlan(pools: [v3], observed: observed, options: options).0
    #expect(next.actions.filter { $0.kind == .delete }.map(\.node) == ["web-1", "web-2"])
    #expect(next.actions.first?.reason.contains("rolls again") == true)
    #expect(next.rollouts.first?.nodes.map(\.oldName) == ["web-1-g2", "web-2-g2"])
    // The next generation takes the index name the kept node frees.
    var protected = v3
    protected.protect = true
    let refused = makePlan(pools: [protected], observed: observed, options: options).1
    #expect(refused.contains { $0.code == "plan.protected" && $0.message.contains("web-1") }, "protect applies to kept nodes")
  }

  /// Heal never touches a kept node: it is shut off on purpose, so neither a start (its gentlest
  /// rung) nor a replace; and its index is not "two domains of one index" to leave to apply.
  @Test func healNeverSeesAKeptNode() throws {
    let fleet = try R.Fleet(replicas: 2, strategy: Self.keeping(R.surge, 2))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    fleet.pool.remediation = RemediationSpec()
    _ = try R.roll(fleet, prober: FakeProber())
    let candidates = healCandidates([fleet.pool], observed: ObservedWorld(hosts: [R.uri: try fleet.host.observe()]), project: R.project)
    #expect(candidates["web"]?.values.map(\.domain.name).sorted() == ["web-1-g2", "web-2-g2"], "\(candidates)")
  }

  /// The seeded model's kill points, in-process: every boundary of a rollout that keeps its
  /// nodes, and of one whose sick canary rolls back warm.
  @Test(arguments: ["surge", "in place, sick canary"])
  func aCrashAtEveryBoundaryResumesToTheSameEnd(_ kind: String) throws {
    let strategy = Self.keeping(kind == "surge" ? R.surge : R.inPlace)
    let prober = kind.contains("sick") ? FakeProber(sickImages: ["demo@v2"]) : FakeProber()
    let clean = try R.Fleet(replicas: 3, strategy: strategy)
    clean.pool.image = ImageRef(parsing: "demo@v2")!
    let (cleanOutcome, boundaries) = try R.roll(clean, prober: prober)
    for at in 1...boundaries {
      let fleet = try R.Fleet(replicas: 3, strategy: strategy)
      fleet.pool.image = ImageRef(parsing: "demo@v2")!
      _ = try R.roll(fleet, prober: prober, crashAt: at)
      let label = "\(kind), crash at boundary \(at) of \(boundaries)"
      #expect(try fleet.journal().rollouts().last?.status == cleanOutcome?.state.status, "\(label)")
      func roles(_ f: R.Fleet) -> [String] {
        f.host.domains.map { "\($0.ownership.index) g\($0.ownership.generation) \($0.ownership.image)\($0.ownership.kept != nil ? " kept" : "")" }.sorted()
      }
      #expect(roles(fleet) == roles(clean), "\(label)")
      // One serving domain per index, and a kept one never runs.
      let serving = fleet.host.domains.filter { $0.ownership.kept == nil }.map(\.ownership.index)
      #expect(serving.sorted() == [1, 2, 3], "\(label): \(serving)")
      #expect(fleet.host.domains.allSatisfy { $0.ownership.kept == nil || !$0.running }, "\(label)")
      try R.expectConverged(fleet, label, rolledBack: cleanOutcome?.state.status == .rolledBack)
    }
  }
}
