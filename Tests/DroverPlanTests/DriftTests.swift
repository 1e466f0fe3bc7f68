import DroverModel
import DroverPlan
import Testing

/// Drift is "the world differs from what Drover applied"; pending is "the spec differs from what
/// Drover applied". The two never mix.
@Suite struct DriftTests {
  static let host = PlannerTests.host

  static func applied(_ spec: PoolSpec, edit: (inout ObservedDomain) -> Void = { _ in }, index: Int = 1) -> ObservedWorld {
    var world = PlannerTests.world(spec)
    for i in world.hosts[host]!.domains.indices {
      let o = world.hosts[host]!.domains[i].ownership!
      world.hosts[host]!.domains[i].actual = DomainShape(
        vcpu: o.vcpu, maxVcpu: o.vcpu, memoryKiB: o.memoryMiB * 1024, liveVcpu: o.vcpu, liveMemoryKiB: o.memoryMiB * 1024,
        disks: [], title: "drover node \(o.node) of pool \(o.pool)")
      if o.index == index { edit(&world.hosts[host]!.domains[i]) }
    }
    return world
  }

  func kinds(_ findings: [DriftFinding]) -> [String] { findings.map { "\($0.kind.rawValue) \($0.node)" } }

  @Test func cleanWorldHasNoFindings() {
    let spec = PlannerTests.pool()
    #expect(detectDrift(pools: [spec], observed: Self.applied(spec)).isEmpty)
  }

  @Test(arguments: [
    ("live memory", "memory web-1"), ("config vcpu", "vcpu web-1"), ("stopped", "state web-1"), ("paused", "state web-1"),
    ("disk", "disk web-1"), ("edited", "record-mismatch web-1"),
  ])
  func outOfBandChangesAreDrift(_ change: String, _ expected: String) {
    let spec = PlannerTests.pool()
    let world = Self.applied(spec) { d in
      switch change {
      case "live memory": d.actual!.liveMemoryKiB = 200_000
      case "config vcpu": d.actual!.maxVcpu = 2
      case "stopped": (d.state, d.isActive) = ("shutoff", false)
      case "paused": d.state = "paused"
      case "disk": d.actual!.disks = ["/var/lib/libvirt/images/other.qcow2"]
      default: d.trust = .mismatch("its seal does not verify under the project key: the record was edited or forged")
      }
    }
    let findings = detectDrift(pools: [spec], observed: world)
    #expect(kinds(findings) == [expected])
    #expect(findings.allSatisfy { $0.isDrift && !$0.fix.isEmpty && !$0.expected.isEmpty && !$0.observed.isEmpty })
  }

  @Test func undefinedNodeIsMissingButANewReplicaIsPending() {
    let spec = PlannerTests.pool()
    var world = Self.applied(spec)
    world.hosts[Self.host]!.domains.removeAll { $0.name == "web-2" }
    #expect(kinds(detectDrift(pools: [spec], observed: world)) == ["missing web-2"])
    let grown = detectDrift(pools: [PlannerTests.pool(replicas: 4)], observed: Self.applied(spec))
    #expect(kinds(grown) == ["pending web-4"])
    #expect(grown.allSatisfy { !$0.isDrift })
  }

  @Test func specChangeIsPendingNotDrift() {
    let findings = detectDrift(pools: [PlannerTests.pool(image: "demo@v2")], observed: Self.applied(PlannerTests.pool()))
    #expect(findings.count == 3 && findings.allSatisfy { $0.kind == .pending })
    #expect(findings[0].expected == "spec: image demo@v2")
  }

  @Test func foreignNameAndRemovedMetadataAreToldApart() {
    let spec = PlannerTests.pool()
    var world = Self.applied(spec)
    let i = world.hosts[Self.host]!.domains.firstIndex { $0.name == "web-2" }!
    world.hosts[Self.host]!.domains[i].ownership = nil
    #expect(kinds(detectDrift(pools: [spec], observed: world)) == ["metadata-removed web-2"])
    world.hosts[Self.host]!.domains[i].actual!.title = "somebody's VM"
    #expect(kinds(detectDrift(pools: [spec], observed: world)) == ["foreign-name web-2"])
  }

  @Test func ownedNodeNoSpecWantsIsUnwanted() {
    let findings = detectDrift(pools: [], observed: Self.applied(PlannerTests.pool(replicas: 1)))
    #expect(kinds(findings) == ["unwanted web-1"])
  }

  @Test func rebuiltImageIsDrift() {
    let spec = PlannerTests.pool(replicas: 1)
    let world = Self.applied(spec) { $0.ownership!.digest = "aaaaaaaaaaaa" }
    let findings = detectDrift(pools: [spec], observed: world, imageDigests: ["demo@v1": "bbbbbbbbbbbb"])
    #expect(kinds(findings) == ["image web-1"])
  }

  @Test func otherProjectsAreInvisible() {
    let spec = PlannerTests.pool()
    var world = Self.applied(spec) { $0.actual!.liveMemoryKiB = 1 }
    for i in world.hosts[Self.host]!.domains.indices { world.hosts[Self.host]!.domains[i].ownership!.project = "other" }
    #expect(detectDrift(pools: [], observed: world).isEmpty)
  }
}
