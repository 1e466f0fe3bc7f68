import DroverBake
import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt
import Synchronization
import Testing

/// Plan and apply against real libvirt (in-process test driver and libvirtd's RPC path).
@Suite struct ObserveAndApplyTests {
  /// Plans and applies through `ApplyEngine`, with real overlays from `NodeImages` (the test
  /// driver keeps storage pools and backed volumes in memory).
  func converge(_ world: TestWorld, _ pools: [PoolSpec], project: String = "default", prune: Bool = false) -> (Plan, [Diagnostic], ApplyOutcome) {
    let world = world.acting(for: project)
    let observed = WorldObserver.observe([world.backend])
    let (plan, diagnostics) = makePlan(pools: pools, observed: observed, options: PlanOptions(project: project, prune: prune))
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-apply-\(project)").path
    let images = NodeImages(catalogue: ImageCatalogue(directory: scratch + "/images"), poolName: "drover-images", consoleDirectory: scratch)
    let backend = world.backend
    let engine = ApplyEngine(
      pools: pools, backends: [world.uri: world.backend], project: project, journalDirectory: scratch + "/journal", keyring: world.backend.keyring, state: .local,
      hooks: ApplyEngine.Hooks(prepare: { node, lane in try images.prepare(node, host: lane as? any ImageHost ?? backend) }))
    return (plan, diagnostics, engine.run(plan))
  }

  /// Overlays of `project` in Drover's image pool, and the disks its domains use.
  func disks(_ world: TestWorld, project: String) throws -> (overlays: [String], used: [String]) {
    let overlays = try world.backend.connection.storagePool(named: "drover-images")?.volumeNames()
      .filter { OverlayName(volume: $0)?.project == project }.sorted() ?? []
    let used = try world.backend.connection.allDomains().compactMap { d -> String? in
      // `try?`: other suites on the shared daemon delete their domains between the listing and this read.
      guard let o = OwnershipMetadata.parse((try? d.metadata(namespace: OwnershipMetadata.namespace)) ?? nil ?? ""), o.project == project else { return nil }
      return String(o.disk.split(separator: "/").last ?? "")
    }.sorted()
    return (overlays, used)
  }

  func replan(_ world: TestWorld, _ pools: [PoolSpec], project: String = "default") -> Plan {
    let world = world.acting(for: project)
    return makePlan(pools: pools, observed: WorldObserver.observe([world.backend]), options: PlanOptions(project: project)).0
  }

  @Test(arguments: ["isolated", "daemon"])
  func createScaleReplaceAndConverge(_ kind: String) throws {
    let world = kind == "isolated" ? try TestWorld.isolated() : try TestWorld.daemon()
    let name = TestWorld.unique("pool")
    let project = TestWorld.unique("proj")
    var (plan, diagnostics, result) = converge(world, [world.pool(name, replicas: 3)], project: project)
    #expect(diagnostics.isEmpty && result.exitStatus == 0)
    #expect(try disks(world, project: project).overlays.count == 3, "every node has its own overlay")
    #expect(plan.actions.count == 3)
    #expect(replan(world, [world.pool(name, replicas: 3)], project: project).actions.isEmpty, "apply then plan shows no changes")

    (plan, _, result) = converge(world, [world.pool(name, replicas: 5)], project: project)
    #expect(plan.actions.map(\.kind) == [.create, .create] && result.exitStatus == 0)
    (plan, _, result) = converge(world, [world.pool(name, replicas: 2)], project: project)
    #expect(plan.actions.map(\.node) == ["\(name)-5", "\(name)-4", "\(name)-3"] && result.exitStatus == 0)
    #expect(try world.backend.connection.domain(named: "\(name)-3") == nil)
    var d = try disks(world, project: project)
    #expect(d.overlays == d.used && d.overlays.count == 2, "scale-down deletes the overlays too")

    let before = try #require(try world.backend.connection.domain(named: "\(name)-1")).uuid
    (plan, _, result) = converge(world, [world.pool(name, replicas: 2, image: "demo@v2")], project: project)
    #expect(plan.actions.map(\.kind) == [.replace, .replace] && result.exitStatus == 0, "\(result.diagnostics)")
    #expect(result.added == 2 && result.destroyed == 2)
    let node = try #require(try world.backend.connection.allDomains().first { $0.name.hasPrefix("\(name)-1") })
    #expect(node.uuid != before)
    let ownership = try #require(OwnershipMetadata.parse(try node.metadata(namespace: OwnershipMetadata.namespace) ?? ""))
    #expect(ownership.image == "demo@v2" && ownership.generation == 2)
    #expect(replan(world, [world.pool(name, replicas: 2, image: "demo@v2")], project: project).actions.isEmpty)
    d = try disks(world, project: project)
    #expect(d.overlays == d.used && d.overlays.count == 2, "a replacement leaves no orphan: \(d)")

    (plan, _, result) = converge(world, [], project: project)
    #expect(plan.actions.isEmpty && plan.undeclared.map(\.pool) == [name] && plan.undeclared.first?.nodes.count == 2, "a pool no file declares is kept without --prune")
    (plan, _, result) = converge(world, [], project: project, prune: true)
    #expect(plan.actions.count == 2 && result.exitStatus == 0, "a removed pool's nodes are deleted only through a visible plan")
    #expect(try disks(world, project: project).overlays.isEmpty)
  }

  @Test func foreignDomainsAreNeverTouched() throws {
    let world = try TestWorld.isolated()
    let foreign = try world.defineForeign("web-2")
    let bystander = try world.defineForeign("bystander")
    let xmlBefore = try foreign.xml(), bystanderBefore = try bystander.xml()

    let (plan, diagnostics, result) = converge(world, [world.pool("web", replicas: 3)])
    #expect(diagnostics.map(\.code) == ["plan.foreign-domain"])
    #expect(!plan.actions.contains { $0.node == "web-2" || $0.node == "bystander" })
    #expect(result.exitStatus == 0)
    _ = converge(world, [world.pool("web", replicas: 0)])
    #expect(try foreign.xml() == xmlBefore && foreign.state() == .running)
    #expect(try bystander.xml() == bystanderBefore && bystander.state() == .running)

    // Even asked directly, the backend refuses to destroy a domain it does not own.
    #expect(throws: HostError.self) { try world.backend.delete(node: "web-2", uuid: foreign.uuid) }
    #expect(try foreign.state() == .running)
  }

  @Test func deleteRefusesAUUIDThatChangedSinceThePlan() throws {
    let world = try TestWorld.isolated()
    _ = converge(world, [world.pool("db", replicas: 1)])
    let error = #expect(throws: HostError.self) { try world.backend.delete(node: "db-1", uuid: "00000000-0000-0000-0000-000000000000") }
    #expect(error?.message.contains("UUID") == true)
    #expect(try world.backend.connection.domain(named: "db-1") != nil)
  }

  @Test func stoppedAndResizedNodesConverge() throws {
    let world = try TestWorld.isolated()
    _ = converge(world, [world.pool("app", replicas: 1)])
    let domain = try #require(try world.backend.connection.domain(named: "app-1"))
    try domain.destroy()
    var spec = world.pool("app", replicas: 1)
    spec.resources.memory = .mebibytes(512)
    let (plan, _, result) = converge(world, [spec])
    #expect(plan.actions.map(\.kind) == [.update, .start])
    #expect(result.exitStatus == 0)
    #expect(try domain.state() == .running)
    #expect(try domain.xml().contains("<memory unit='KiB'>524288</memory>"))
    #expect(replan(world, [spec]).actions.isEmpty)
  }

  @Test func failedCreateLeavesNoHalfDefinedDomain() throws {
    let world = try TestWorld.isolated()
    var spec = world.pool("bad", replicas: 1)
    spec.network = "no-such-network"
    let (_, _, result) = converge(world, [spec])
    // Whether define or start refused it, nothing named bad-1 may remain.
    if result.exitStatus != 0 {
      #expect(result.executed.failed.first?.error.subject == "node bad-1 on \(world.uri)")
    }
    let remaining = try world.backend.connection.domain(named: "bad-1")
    #expect((result.exitStatus == 0) == (remaining != nil))
  }

  @Test func observeCostsOneListingPlusOneReadPerDomain() throws {
    let world = try TestWorld.isolated()
    let n = 1000
    let spec = world.pool("big", replicas: n)
    for i in 1...n {
      _ = try world.backend.connection.defineDomain(
        xml: DomainXML.render(
          NodeDefinition(ownership: desiredOwnership(spec, index: i, digest: "", generation: 1, project: "default")), bootsNodes: world.backend.bootsNodes,
          uuid: UUID().uuidString.lowercased(), key: TestWorld.key("default"), host: world.uri))
    }
    world.backend.calls.reset()
    let observed = WorldObserver.observe([world.backend])
    #expect(observed.hosts[world.uri]?.domains.count == n)
    #expect(world.backend.calls["list"] == 1)
    #expect(world.backend.calls["config-xml"] == n)
    #expect(world.backend.calls.total <= n + 3, "calls per node ≤ 1 plus a constant (the listing, the image pool's overlays)")
    #expect(world.backend.calls.writes == 0)
    let (plan, _) = makePlan(pools: [spec], observed: observed)
    #expect(plan.actions.map(\.kind) == Array(repeating: .start, count: n), "defined but stopped nodes are started, none recreated")
  }

  /// #19: a host's CPUs, memory and pool space cost `plan` one call per host: node info on the
  /// test driver; on a host that boots nodes the kernel's memory figures, the CPUs coming from
  /// the capabilities read anyway, and the pool's space from the info that replaced its state.
  @Test(arguments: ["test", "test+unix", "qemu"]) func capacityIsOneCallPerHost(_ driver: String) throws {
    let backend: LibvirtHostBackend
    switch driver {
    case "test": backend = try TestWorld.isolated().backend
    case "test+unix": backend = try TestWorld.daemon().backend
    default: backend = try LibvirtHostBackend.connect("qemu:///system", keyring: Keyring(project: "p", key: nil), readOnly: true, imagePool: "drover-images")
    }
    backend.calls.reset()
    let host = try backend.observe(detailed: false)
    let capacity = try #require(host.capacity)
    #expect(capacity.cpus > 0 && capacity.memoryBytes > 0)
    let capacityCalls = backend.calls["node-memory"] + backend.calls["node-info"]
    #expect(capacityCalls == 1, "one capacity read per host, not \(capacityCalls)")
    #expect(backend.calls[driver == "qemu" ? "node-memory" : "node-info"] == 1)
    // Everything else is what observe cost before capacity: the listing, a read per domain, the
    // pool's lookup and listing (its info replaced the state check), and on a real host its
    // capabilities and KVM's domain capabilities.
    let before = ["list", "config-xml", "pool-lookup", "volume-list", "capabilities", "domain-capabilities"].map { backend.calls[$0] }.reduce(0, +)
    #expect(backend.calls.total == before + 1)
    if driver == "qemu" {
      #expect(capacity.availableMemoryBytes != nil && !capacity.simulated)
    } else {
      #expect(backend.calls["capabilities"] == 0, "the test driver boots nothing: no capabilities read")
    }
  }

  /// #20: a heal rebuilds a node from the very build its record names; when that build is gone
  /// it refuses (never another build of the same version), before anything is made on the host.
  @Test func aHealNeedsTheNodesOwnBuild() throws {
    let host = try LibvirtHostBackend.connect("qemu:///system", keyring: Keyring(project: "p", key: nil), readOnly: true, imagePool: "drover-images")
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-exact-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let images = NodeImages(catalogue: ImageCatalogue(directory: scratch + "/images"), poolName: "drover-images", consoleDirectory: scratch)
    let spec = PoolSpec(name: "ex", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
    var node = NodeDefinition(ownership: desiredOwnership(spec, index: 1, digest: "0123456789abcdef", generation: 2, project: "p"))
    node.exactBuild = true
    let exact = #expect(throws: Diagnostic.self) { try images.prepare(node, host: host) }
    #expect(exact?.code == "image.build-gone" && exact?.message.contains("0123456789ab") == true)
    node.exactBuild = false
    let any = #expect(throws: Diagnostic.self) { try images.prepare(node, host: host) }
    #expect(any?.code == "image.missing", "an upgrade takes the version's current build, here none")
  }

  @Test func deadHostIsReportedQuicklyAsUnreachable() {
    let error = #expect(throws: HostError.self) {
      try LibvirtHostBackend.connect("test+unix:///default?socket=/nonexistent/libvirt-sock", keyring: Keyring(project: "p", key: nil), timeout: 5)
    }
    #expect(error?.isUnreachable == true)
    #expect(error?.diagnostics.first?.code == "libvirt.unreachable")
  }
}

/// Drift's observation runs on a read-only connection and makes no write call.
@Suite struct ReadOnlyObservationTests {
  @Test func detailedObservationOnAReadOnlyConnection() throws {
    let name = TestWorld.unique("ro")
    let writer = try TestWorld.daemon(project: name)
    let spec = writer.pool(name, replicas: 3)
    let plan = makePlan(pools: [spec], observed: WorldObserver.observe([writer.backend]), options: PlanOptions(project: name)).0
    #expect(Executor(backends: [writer.uri: writer.backend]).apply(plan).succeeded)

    let reader = try LibvirtHostBackend.connect(writer.uri, keyring: writer.backend.keyring, readOnly: true)
    let host = try reader.observe(detailed: true)
    let mine = host.domains.filter { $0.ownership?.project == name }
    #expect(mine.count == 3)
    #expect(mine.allSatisfy { $0.actual?.memoryKiB == 256 * 1024 && $0.actual?.vcpu == 1 && $0.trust == .verified })
    #expect(reader.calls.writes == 0)
    #expect(reader.calls["list"] == 1)
    #expect(reader.calls["xml"] <= 2 * reader.calls.domainsListed, "config XML, plus live XML for running domains")
    // The connection itself cannot write.
    #expect(throws: HostError.self) { try reader.delete(node: "\(name)-1", uuid: mine[0].uuid) }
    #expect(try writer.backend.connection.domain(named: "\(name)-1") != nil)
    let cleanup = makePlan(pools: [], observed: WorldObserver.observe([writer.backend]), options: PlanOptions(project: name, prune: true)).0
    #expect(Executor(backends: [writer.uri: writer.backend]).apply(cleanup).succeeded)
  }
}

/// #39: a wide apply gives each worker a lane — a connection of its own — whose calls run inline
/// on the worker's thread; every node still gets its overlay and its sealed record, on the same
/// daemon world.
@Suite struct ApplyLanesTests {
  @Test func aWideApplyUsesLanesAndEveryNodeGetsItsDisk() throws {
    let project = TestWorld.unique("lanes")
    let world = try TestWorld.daemon(project: project)
    let name = TestWorld.unique("wide")
    let pool = world.pool(name, replicas: Executor.laneThreshold + 4)
    let observed = WorldObserver.observe([world.backend])
    let (plan, _) = makePlan(pools: [pool], observed: observed, options: PlanOptions(project: project))
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-lanes-\(project)").path
    let images = NodeImages(catalogue: ImageCatalogue(directory: scratch + "/images"), poolName: "drover-images", consoleDirectory: scratch)
    let lanesUsed = Mutex(Set<ObjectIdentifier>())
    let backend = world.backend
    let engine = ApplyEngine(
      pools: [pool], backends: [world.uri: backend], project: project, journalDirectory: scratch + "/journal", keyring: backend.keyring, state: .local,
      hooks: ApplyEngine.Hooks(prepare: { node, lane in
        lanesUsed.withLock { _ = $0.insert(ObjectIdentifier(lane)) }
        return try images.prepare(node, host: lane as? any ImageHost ?? backend)
      }))
    world.backend.calls.reset()
    let outcome = engine.run(plan)
    defer {
      let cleanup = makePlan(pools: [world.pool(name, replicas: 0)], observed: WorldObserver.observe([backend]), options: PlanOptions(project: project)).0
      _ = ApplyEngine(pools: [pool], backends: [world.uri: backend], project: project, journalDirectory: scratch + "/journal", keyring: backend.keyring, state: .local, hooks: ApplyEngine.Hooks()).run(cleanup)
    }
    #expect(outcome.exitStatus == 0 && outcome.added == pool.replicas)
    #expect(world.backend.calls["lane-open"] == 8, "one lane per worker")
    #expect(!lanesUsed.withLock { $0.contains(ObjectIdentifier(backend)) }, "no node was made on the shared connection")
    #expect(lanesUsed.withLock { $0.count } > 1, "nodes were made on several lanes")
    // The same world: every node is seen through the shared connection, with its overlay and a record that verifies.
    let seen = try world.backend.observe().domains.filter { $0.ownership?.pool == name }
    #expect(seen.count == pool.replicas && seen.allSatisfy { $0.trust == .verified })
    let overlays = try world.backend.connection.storagePool(named: "drover-images")?.volumeNames().filter { OverlayName(volume: $0)?.project == project } ?? []
    #expect(overlays.count == pool.replicas)
  }
}
