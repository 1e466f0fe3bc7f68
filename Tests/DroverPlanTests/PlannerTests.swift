import DroverBasics
import DroverModel
import DroverPlan
import Testing

/// The planner as a pure function: specs × observed world → actions and diagnostics.
@Suite struct PlannerTests {
  static let host = "test:///default"

  static func pool(_ name: String = "web", replicas: Int = 3, image: String = "demo@v1", protect: Bool = false) -> PoolSpec {
    PoolSpec(name: name, hosts: [host], replicas: replicas, image: ImageRef(parsing: image)!, protect: protect)
  }

  /// An observed host holding the nodes `spec` would have created, as Drover wrote them.
  static func world(_ spec: PoolSpec, count: Int? = nil, active: Bool = true, extra: [ObservedDomain] = []) -> ObservedWorld {
    let domains = (1...max(1, count ?? spec.replicas)).prefix(count ?? spec.replicas).map { i in
      let o = desiredOwnership(spec, index: i, digest: "", generation: 1, project: "default")
      return ObservedDomain(
        name: o.node, uuid: "uuid-\(spec.name)-\(i)", state: active ? "running" : "shutoff", isActive: active, ownership: o,
        metadataDigest: "m\(i)", trust: .verified)
    }
    return ObservedWorld(hosts: [host: ObservedHost(uri: host, domains: domains + extra)])
  }

  static let foreign = ObservedDomain(name: "web-2", uuid: "f00", state: "running", isActive: true, ownership: nil, metadataDigest: "")

  func kinds(_ plan: Plan) -> [String] { plan.actions.map { "\($0.kind.rawValue) \($0.node)" } }

  @Test func emptyWorldCreatesEveryNode() {
    let (plan, diagnostics) = makePlan(pools: [Self.pool()], observed: ObservedWorld(hosts: [Self.host: ObservedHost(uri: Self.host, domains: [])]))
    #expect(diagnostics.isEmpty)
    #expect(kinds(plan) == ["create web-1", "create web-2", "create web-3"])
    #expect(plan.summary == (3, 0, 0))
  }

  @Test func unchangedSpecPlansNothing() {
    let spec = Self.pool()
    let (plan, diagnostics) = makePlan(pools: [spec], observed: Self.world(spec))
    #expect(diagnostics.isEmpty)
    #expect(plan.actions.isEmpty)
  }

  @Test func labelOrderAndPoolOrderDoNotMatter() {
    var a = Self.pool("a"), b = Self.pool("b")
    a.labels = ["x": "1", "y": "2"]
    b.labels = ["y": "2", "x": "1"]
    var world = Self.world(a)
    world.hosts[Self.host]!.domains += Self.world(b).hosts[Self.host]!.domains
    #expect(makePlan(pools: [a, b], observed: world).0.actions.isEmpty)
    #expect(makePlan(pools: [b, a], observed: world).0.actions.isEmpty)
    #expect(specDigest([a, b]) == specDigest([b, a]))
  }

  @Test func scaleUpCreatesTheMissingIndexes() {
    let spec = Self.pool(replicas: 5)
    let (plan, _) = makePlan(pools: [spec], observed: Self.world(spec, count: 3))
    #expect(kinds(plan) == ["create web-4", "create web-5"])
  }

  @Test func scaleDownDeletesHighestIndexFirstWithAReason() {
    let old = Self.pool(replicas: 4)
    let (plan, _) = makePlan(pools: [Self.pool(replicas: 2)], observed: Self.world(old))
    #expect(kinds(plan) == ["delete web-4", "delete web-3"])
    #expect(plan.actions[0].reason.contains("scale down to 2 replicas"))
    #expect(plan.actions[0].uuid == "uuid-web-4")
  }

  @Test func imageChangeReplaces() {
    let (plan, _) = makePlan(pools: [Self.pool(image: "demo@v2")], observed: Self.world(Self.pool()))
    #expect(kinds(plan) == ["replace web-1", "replace web-2", "replace web-3"])
    #expect(plan.actions[0].reason == "image demo@v1 → demo@v2")
    #expect(plan.actions[0].after?.ownership.generation == 2)
    #expect(plan.summary == (3, 0, 3))
  }

  @Test func memoryChangeIsAnUpdateWithRestartAndDiskChangeIsAReplace() {
    var spec = Self.pool(replicas: 1)
    spec.resources.memory = .mebibytes(512)
    let (plan, _) = makePlan(pools: [spec], observed: Self.world(Self.pool(replicas: 1)))
    #expect(kinds(plan) == ["update web-1"])
    #expect(plan.actions[0].restart)
    #expect(plan.actions[0].reason == "memory 256MiB → 512MiB (restarts the node, same disk)")
    spec.resources.disk = .mebibytes(2048)
    #expect(kinds(makePlan(pools: [spec], observed: Self.world(Self.pool(replicas: 1))).0) == ["replace web-1"])
  }

  @Test func labelChangeIsAnInPlaceUpdate() {
    var spec = Self.pool(replicas: 1)
    spec.labels = ["team": "sre"]
    let (plan, _) = makePlan(pools: [spec], observed: Self.world(Self.pool(replicas: 1)))
    #expect(kinds(plan) == ["update web-1"])
    #expect(!plan.actions[0].restart)
  }

  @Test func stoppedNodeIsStarted() {
    let spec = Self.pool(replicas: 1)
    let (plan, _) = makePlan(pools: [spec], observed: Self.world(spec, active: false))
    #expect(kinds(plan) == ["start web-1"])
    #expect(plan.actions[0].reason == "node is shutoff")
  }

  @Test func foreignDomainWithACollidingNameIsAPlanErrorAndNeverAnAction() {
    let spec = Self.pool()
    let world = Self.world(spec, count: 1, extra: [Self.foreign])
    let (plan, diagnostics) = makePlan(pools: [spec], observed: world)
    #expect(!plan.actions.contains { $0.node == "web-2" })
    #expect(kinds(plan) == ["create web-3"])
    #expect(diagnostics.count == 1)
    let error = diagnostics.first
    #expect(error?.code == "plan.foreign-domain")
    #expect(error?.message.contains("web-2 (uuid f00)") == true)
    #expect(error?.message.contains("pool web") == true)
  }

  @Test func foreignDomainsWithoutCollisionAreInvisible() {
    let spec = Self.pool()
    let other = ObservedDomain(name: "test", uuid: "t", state: "running", isActive: true, ownership: nil, metadataDigest: "")
    let (plan, diagnostics) = makePlan(pools: [spec], observed: Self.world(spec, extra: [other]))
    #expect(plan.actions.isEmpty && diagnostics.isEmpty)
    let (scaled, _) = makePlan(pools: [Self.pool(replicas: 0)], observed: Self.world(spec, extra: [other]))
    #expect(!scaled.actions.contains { $0.node == "test" })
  }

  @Test func anotherProjectsNodesAreNeverTouched() {
    let spec = Self.pool("batch")
    var world = Self.world(spec)
    for i in world.hosts[Self.host]!.domains.indices { world.hosts[Self.host]!.domains[i].ownership!.project = "other" }
    let (plan, diagnostics) = makePlan(pools: [Self.pool()], observed: world)
    #expect(!plan.actions.contains { $0.pool == "batch" })
    #expect(diagnostics.isEmpty)
  }

  @Test func protectedPoolRefusesDeleteAndReplace() {
    let (plan, diagnostics) = makePlan(pools: [Self.pool(replicas: 2, protect: true)], observed: Self.world(Self.pool(protect: true)))
    #expect(kinds(plan) == ["delete web-3"])
    #expect(diagnostics.map(\.code) == ["plan.protected"])
    let (_, replaceDiagnostics) = makePlan(
      pools: [Self.pool(image: "demo@v2", protect: true)], observed: Self.world(Self.pool(protect: true)))
    #expect(replaceDiagnostics.count == 3)
  }

  /// A pool no file declares is kept and shown; only --prune deletes its nodes (protect honoured).
  @Test func removedPoolIsKeptUnlessPrunedAndRefusesWhenProtected() {
    let (kept, keptDiagnostics) = makePlan(pools: [], observed: Self.world(Self.pool()))
    #expect(kept.actions.isEmpty && keptDiagnostics.isEmpty)
    #expect(kept.undeclared == [UndeclaredPool(pool: "web", nodes: ["web-1", "web-2", "web-3"], hosts: ["test:///default"])])
    #expect(!kept.prune)
    let (plan, diagnostics) = makePlan(pools: [], observed: Self.world(Self.pool()), options: PlanOptions(prune: true))
    #expect(kinds(plan) == ["delete web-1", "delete web-2", "delete web-3"])
    #expect(plan.actions[0].reason == "pool web is not declared in pools/ (--prune)")
    #expect(plan.prune && plan.undeclared.isEmpty)
    #expect(diagnostics.isEmpty)
    let (_, protected) = makePlan(pools: [], observed: Self.world(Self.pool(protect: true)), options: PlanOptions(prune: true))
    #expect(protected.count == 3 && protected.allSatisfy { $0.code == "plan.protected" })
  }

  @Test func unreachableHostIsAnErrorNotAnEmptyHost() {
    let (plan, diagnostics) = makePlan(pools: [Self.pool()], observed: ObservedWorld(unreachable: [Self.host: "connection refused"]))
    #expect(plan.actions.isEmpty)
    #expect(diagnostics.first?.code == "libvirt.unreachable")
  }

  /// `--skip-unreachable`: a pool over a read host and an unread one gets no action at all, and
  /// its nodes on the unread host are listed as unknown (the indexes the spec places there).
  @Test func skippedUnreachableHostShowsItsNodesAsUnknown() {
    var spec = Self.pool(replicas: 4)
    spec.hosts = [Self.host, "qemu+ssh://far/system"]
    var options = PlanOptions()
    options.skipUnreachable = true
    var world = Self.world(Self.pool(replicas: 1))
    world.unreachable["qemu+ssh://far/system"] = "connection refused"
    let (plan, diagnostics) = makePlan(pools: [spec], observed: world, options: options)
    #expect(plan.actions.isEmpty, "web-3 is missing on the read host, yet nothing is created")
    #expect(diagnostics.map(\.code) == ["libvirt.unreachable-skipped"])
    #expect(plan.unknown == [UnknownNodes(pool: "web", host: "qemu+ssh://far/system", nodes: ["web-2", "web-4"], reason: "connection refused", seen: ["web-1"])])
  }

  @Test func targetAndExcludeSelectPoolsAndNodes() {
    let world = ObservedWorld(hosts: [Self.host: ObservedHost(uri: Self.host, domains: [])])
    let pools = [Self.pool("web", replicas: 2), Self.pool("db", replicas: 2)]
    #expect(kinds(makePlan(pools: pools, observed: world, options: PlanOptions(targets: ["db"])).0) == ["create db-1", "create db-2"])
    #expect(kinds(makePlan(pools: pools, observed: world, options: PlanOptions(targets: ["web-2"])).0) == ["create web-2"])
    #expect(kinds(makePlan(pools: pools, observed: world, options: PlanOptions(excludes: ["web"])).0) == ["create db-1", "create db-2"])
  }

  @Test func nodesAreSpreadRoundRobinOverHosts() {
    var spec = Self.pool(replicas: 4)
    spec.hosts = ["test:///a", "test:///b"]
    let world = ObservedWorld(hosts: ["test:///a": ObservedHost(uri: "test:///a", domains: []), "test:///b": ObservedHost(uri: "test:///b", domains: [])])
    #expect(makePlan(pools: [spec], observed: world).0.actions.map(\.host) == ["test:///a", "test:///b", "test:///a", "test:///b"])
  }

  @Test func staleWorldIsNamed() {
    let spec = Self.pool()
    let before = WorldFingerprint(Self.world(spec), relevantHosts: [Self.host], project: "default", pools: ["web"])
    var changed = Self.world(spec)
    changed.hosts[Self.host]!.domains.removeLast()
    changed.hosts[Self.host]!.domains[0].metadataDigest = "edited"
    let after = WorldFingerprint(changed, relevantHosts: [Self.host], project: "default", pools: ["web"])
    #expect(before.digest != after.digest)
    #expect(after.differences(from: before) == ["\(Self.host): domain web-1 metadata changed", "\(Self.host): domain web-3 disappeared"])
  }

  @Test func unrelatedVMsDoNotMakeAPlanStaleButANodeNamedForeignDomainDoes() {
    let spec = Self.pool()
    let before = WorldFingerprint(Self.world(spec), relevantHosts: [Self.host], project: "default", pools: ["web"])
    let unrelated = ObservedDomain(name: "someone-elses-vm", uuid: "u", state: "running", isActive: true, ownership: nil, metadataDigest: "")
    let withUnrelated = WorldFingerprint(Self.world(spec, extra: [unrelated]), relevantHosts: [Self.host], project: "default", pools: ["web"])
    #expect(withUnrelated.digest == before.digest)
    let squatter = ObservedDomain(name: "web-4", uuid: "s", state: "running", isActive: true, ownership: nil, metadataDigest: "")
    let withSquatter = WorldFingerprint(Self.world(spec, extra: [squatter]), relevantHosts: [Self.host], project: "default", pools: ["web"])
    #expect(withSquatter.differences(from: before) == ["\(Self.host): domain web-4 appeared"])
  }
}
