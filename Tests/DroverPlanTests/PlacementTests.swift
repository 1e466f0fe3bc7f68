import DroverBasics
import DroverModel
import DroverPlan
import Testing

/// #19: capacity-aware placement as pure functions — table tests over capacities, ratios,
/// cordons, drains, surges and host removal.
@Suite struct PlacementTests {
  static let a = "qemu+ssh://a/system", b = "qemu+ssh://b/system"
  static let gib = 1 << 30, mib = 1 << 20

  static func pool(replicas: Int, hosts: [String] = [a, b], memoryMiB: Int = 1024, surge: Int = 1, image: String = "demo@v1") -> PoolSpec {
    var p = PoolSpec(
      name: "web", hosts: hosts, replicas: replicas, image: ImageRef(parsing: image)!,
      resources: Resources(vcpu: 1, memory: .mebibytes(UInt64(memoryMiB)), disk: .mebibytes(1024)))
    p.upgrade.maxSurge = .count(surge)
    p.upgrade.maxUnavailable = .count(surge == 0 ? 1 : 0)
    return p
  }

  /// A node of `spec` as Drover wrote it, with the shape libvirt reports.
  static func node(_ spec: PoolSpec, _ index: Int, image: String? = nil) -> ObservedDomain {
    var s = spec
    if let image { s.image = ImageRef(parsing: image)! }
    let o = desiredOwnership(s, index: index, digest: "", generation: 1, project: "default")
    var d = ObservedDomain(
      name: o.node, uuid: "uuid-\(index)", state: "running", isActive: true, ownership: o, metadataDigest: "m\(index)", trust: .verified)
    d.actual = DomainShape(
      vcpu: o.vcpu, maxVcpu: o.vcpu, memoryKiB: o.memoryMiB * 1024, liveVcpu: o.vcpu, liveMemoryKiB: o.memoryMiB * 1024, disks: [], title: nil)
    return d
  }

  static func host(_ uri: String, memoryGiB: Int = 8, cpus: Int = 4, poolFreeGiB: Int = 100, cordoned: Bool = false, domains: [ObservedDomain] = [])
    -> ObservedHost
  {
    var h = ObservedHost(uri: uri, domains: domains, poolVolumes: cordoned ? [HostCordon.volume] : [])
    h.capacity = HostCapacity(
      cpus: cpus, memoryBytes: UInt64(memoryGiB * gib), availableMemoryBytes: UInt64(memoryGiB * gib), poolFreeBytes: UInt64(poolFreeGiB * gib))
    return h
  }

  static func plan(_ pools: [PoolSpec], _ hosts: [ObservedHost], limits: [String: HostLimits] = [:], draining: Set<String> = [])
    -> (Plan, [Diagnostic])
  {
    var options = PlanOptions()
    options.hostLimits = limits
    options.draining = draining
    return makePlan(pools: pools, observed: ObservedWorld(hosts: Dictionary(uniqueKeysWithValues: hosts.map { ($0.uri, $0) })), options: options)
  }

  func placed(_ plan: Plan) -> [String] { plan.actions.map { "\($0.kind.rawValue) \($0.node) \($0.destination ?? $0.host)" } }

  // MARK: shortfall of one host

  @Test(arguments: [
    // (memory GiB, ratio, committed GiB, planned GiB, demand GiB, fits)
    (8, 1.0, 6, 0, 2, true),
    (8, 1.0, 6, 1, 2, false),
    (8, 1.5, 10, 0, 2, true),
    (8, 1.5, 11, 0, 2, false),
    (8, 0.5, 0, 0, 4, true),
    (8, 0.5, 0, 0, 5, false),
  ] as [(Int, Double, Int, Int, Int, Bool)])
  func memoryRatio(_ c: (Int, Double, Int, Int, Int, Bool)) {
    var room = HostRoom(
      uri: Self.a, capacity: HostCapacity(cpus: 8, memoryBytes: UInt64(c.0 * Self.gib)), limits: HostLimits(maxMemoryRatio: c.1), cordoned: false,
      committed: Demand(memory: c.2 * Self.gib))
    room.planned = Demand(memory: c.3 * Self.gib)
    let why = room.shortfall(Demand(memory: c.4 * Self.gib))
    #expect((why == nil) == c.5, "\(c): \(why ?? "fits")")
    if let why { #expect(why.contains("of memory") && why.contains("× \(c.1)")) }
  }

  @Test func vcpuRatioDefaultsToFourPerCPU() {
    let room = HostRoom(uri: Self.a, capacity: HostCapacity(cpus: 2, memoryBytes: UInt64(64 * Self.gib)), limits: HostLimits(), cordoned: false, committed: Demand(vcpu: 7))
    #expect(room.shortfall(Demand(vcpu: 1)) == nil)
    #expect(room.shortfall(Demand(vcpu: 2))?.contains("1 vCPU (2 CPUs × 4.0 allow 8") == true)
  }

  @Test func notOvercommittedNeverAsksMoreThanIsAvailableNow() {
    let room = HostRoom(
      uri: Self.a, capacity: HostCapacity(cpus: 8, memoryBytes: UInt64(16 * Self.gib), availableMemoryBytes: UInt64(Self.gib)), limits: HostLimits(),
      cordoned: false, committed: Demand())
    #expect(room.shortfall(Demand(memory: 2 * Self.gib))?.contains("available now") == true)
    var over = room
    over.limits = HostLimits(maxMemoryRatio: 2)
    #expect(over.shortfall(Demand(memory: 2 * Self.gib)) == nil, "an overcommitted host is judged by its ratio alone")
  }

  @Test func diskIsThePoolsFreeBytesTimesItsRatio() {
    let room = HostRoom(
      uri: Self.a, capacity: HostCapacity(cpus: 8, memoryBytes: UInt64(16 * Self.gib), poolFreeBytes: UInt64(3 * Self.gib)), limits: HostLimits(),
      cordoned: false, committed: Demand())
    #expect(room.shortfall(Demand(disk: 3 * Self.gib)) == nil)
    #expect(room.shortfall(Demand(disk: 4 * Self.gib))?.contains("disk in Drover's image pool") == true)
    var thin = room
    thin.limits = HostLimits(maxDiskRatio: 2)
    #expect(thin.shortfall(Demand(disk: 6 * Self.gib)) == nil)
  }

  @Test func theTestDriversMadeUpFiguresBindOnlyWithRatiosSet() {
    let simulated = HostCapacity(cpus: 16, memoryBytes: UInt64(3 * Self.gib), simulated: true)
    let free = HostRoom(uri: "test:///default", capacity: simulated, limits: HostLimits(), cordoned: false, committed: Demand(memory: 8 * Self.gib))
    #expect(!free.enforced && free.shortfall(Demand(memory: 100 * Self.gib)) == nil)
    var bound = free
    bound.limits = HostLimits(maxMemoryRatio: 4)
    #expect(bound.enforced && bound.shortfall(Demand(memory: 5 * Self.gib)) != nil)
  }

  // MARK: surge peaks

  @Test(arguments: [
    // (pairs (old, new) MiB, concurrency, surge, peak memory MiB)
    ([(1024, 1024), (1024, 1024), (1024, 1024)], 1, true, 1024),
    ([(1024, 1024), (1024, 1024), (1024, 1024)], 2, true, 2048),
    ([(1024, 2048), (1024, 2048)], 1, true, 2 * 1024 + 1024),
    ([(1024, 2048), (1024, 2048)], 1, false, 2 * 1024),
    ([(2048, 1024)], 1, true, 1024),
    ([(1024, 1024)], 1, false, 0),
  ] as [([(Int, Int)], Int, Bool, Int)])
  func replacementPeaks(_ c: ([(Int, Int)], Int, Bool, Int)) {
    let pairs = c.0.map { (old: Demand(memory: $0.0 * Self.mib, disk: Self.gib), new: Demand(memory: $0.1 * Self.mib, disk: Self.gib)) }
    let peak = replacementPeak(pairs, concurrency: c.1, surge: c.2)
    #expect(peak.memory == c.3 * Self.mib)
    #expect(peak.disk == min(c.1, pairs.count) * Self.gib, "a batch's new overlays exist before the old ones go")
  }

  // MARK: the planner places

  @Test func aPoolThatFitsIsPlacedRoundRobinAsBefore() {
    let (plan, problems) = Self.plan([Self.pool(replicas: 4)], [Self.host(Self.a), Self.host(Self.b)])
    #expect(problems.isEmpty)
    #expect(placed(plan) == ["create web-1 \(Self.a)", "create web-2 \(Self.b)", "create web-3 \(Self.a)", "create web-4 \(Self.b)"])
  }

  @Test func newNodesGoWhereThereIsRoomAndSpread() {
    // a has room for one more 1 GiB node (8 GiB, 7 given); b is empty.
    let spec = Self.pool(replicas: 5)
    var hog = ObservedDomain(name: "other", uuid: "x", state: "running", isActive: true, ownership: nil, metadataDigest: "")
    hog.actual = DomainShape(vcpu: 1, maxVcpu: 1, memoryKiB: 6 << 20, liveVcpu: 1, liveMemoryKiB: 6 << 20, disks: [], title: nil)
    let (plan, problems) = Self.plan([spec], [Self.host(Self.a, domains: [hog, Self.node(spec, 1)]), Self.host(Self.b)])
    #expect(problems.isEmpty, "\(problems)")
    #expect(placed(plan) == ["create web-2 \(Self.b)", "create web-3 \(Self.a)", "create web-4 \(Self.b)", "create web-5 \(Self.b)"])
  }

  @Test func aScaleUpThatFitsNowhereIsAPlanErrorNamingEachHostAndItsShortfall() {
    let spec = Self.pool(replicas: 3, memoryMiB: 3072)
    let (plan, problems) = Self.plan([spec], [Self.host(Self.a, memoryGiB: 4), Self.host(Self.b, memoryGiB: 4)])
    #expect(plan.actions.count == 2)
    let error = try? #require(problems.first { $0.code == "plan.capacity" })
    #expect(error?.message.contains("web-3") == true)
    #expect(error?.message.contains("\(Self.a) is short of 2048 MiB of memory") == true && error?.message.contains("\(Self.b) is short of") == true, "\(error?.message ?? "")")
  }

  @Test func poolsShareTheHostsTheyDrawOn() {
    var other = Self.pool(replicas: 2, hosts: [Self.a])
    other.name = "api"
    let (_, problems) = Self.plan([other, Self.pool(replicas: 1, hosts: [Self.a], memoryMiB: 7168)], [Self.host(Self.a)])
    #expect(problems.contains { $0.code == "plan.capacity" && $0.message.contains("web-1") && $0.message.contains("this plan adds 2048 MiB before") })
  }

  @Test func aCordonedHostGetsNoNewNodesButKeepsItsOwn() {
    let spec = Self.pool(replicas: 3)
    let (plan, problems) = Self.plan([spec], [Self.host(Self.a, cordoned: true, domains: [Self.node(spec, 1)]), Self.host(Self.b)])
    #expect(problems.isEmpty)
    #expect(placed(plan) == ["create web-2 \(Self.b)", "create web-3 \(Self.b)"])
    let (_, stuck) = Self.plan([Self.pool(replicas: 1, hosts: [Self.a])], [Self.host(Self.a, cordoned: true)])
    #expect(stuck.contains { $0.code == "plan.capacity" && $0.message.contains("is cordoned") })
  }

  @Test func aReplacementOnACordonedHostMovesAndOtherNodesStay() {
    let spec = Self.pool(replicas: 2, image: "demo@v2")
    let nodes = [Self.node(spec, 1, image: "demo@v1"), Self.node(spec, 2, image: "demo@v1")]
    let (plan, problems) = Self.plan([spec], [Self.host(Self.a, cordoned: true, domains: [nodes[0]]), Self.host(Self.b, domains: [nodes[1]])])
    #expect(problems.isEmpty, "\(problems)")
    #expect(placed(plan) == ["replace web-1 \(Self.b)", "replace web-2 \(Self.b)"])
    #expect(plan.actions[0].destination == Self.b && plan.actions[1].destination == nil)
    #expect(plan.rollouts.first?.nodes.map(\.targetHost) == [Self.b, Self.b])
  }

  @Test func aDrainedHostsNodesMoveThroughTheRolloutEngine() {
    let spec = Self.pool(replicas: 2)
    let (plan, problems) = Self.plan([spec], [Self.host(Self.a, domains: [Self.node(spec, 1)]), Self.host(Self.b, domains: [Self.node(spec, 2)])], draining: [Self.a])
    #expect(problems.isEmpty, "\(problems)")
    #expect(placed(plan) == ["replace web-1 \(Self.b)"])
    #expect(plan.actions[0].reason.contains("is being drained") && plan.actions[0].host == Self.a)
    let node = try? #require(plan.rollouts.first?.nodes.first)
    #expect(node?.host == Self.a && node?.toHost == Self.b && node?.to.generation == 2)
  }

  @Test func removingAHostFromHostsIsTheSameRollingMoveShownInThePlan() {
    let spec = Self.pool(replicas: 2)
    var smaller = spec
    smaller.hosts = [Self.b]
    let (plan, problems) = Self.plan([smaller], [Self.host(Self.a, domains: [Self.node(spec, 1)]), Self.host(Self.b, domains: [Self.node(spec, 2)])])
    #expect(problems.isEmpty, "\(problems)")
    #expect(placed(plan) == ["replace web-1 \(Self.b)"], "no delete and create outside the rollout engine")
    #expect(plan.actions[0].reason.contains("no longer in hosts"))
    #expect(plan.rollouts.count == 1)
  }

  @Test func aMoveWithNowhereToGoIsAPlanErrorAndNothingElseOfItsNode() {
    let spec = Self.pool(replicas: 2, memoryMiB: 4096)
    let (plan, problems) = Self.plan(
      [spec], [Self.host(Self.a, domains: [Self.node(spec, 1)]), Self.host(Self.b, memoryGiB: 6, domains: [Self.node(spec, 2)])], draining: [Self.a])
    #expect(plan.actions.isEmpty)
    #expect(problems.contains { $0.code == "plan.capacity" && $0.message.contains("web-1") && $0.message.contains("is being drained") && $0.message.contains("\(Self.b) is short of") })
  }

  @Test func aSurgeThatDoesNotFitItsHostIsAPlanErrorNamingIt() {
    // 3 GiB host with two 1 GiB nodes: one more beside them (surge) fits, two do not.
    let spec = Self.pool(replicas: 2, hosts: [Self.a], image: "demo@v2")
    let nodes = [Self.node(spec, 1, image: "demo@v1"), Self.node(spec, 2, image: "demo@v1")]
    let (_, fits) = Self.plan([spec], [Self.host(Self.a, memoryGiB: 3, domains: nodes)])
    #expect(fits.isEmpty, "\(fits)")
    var wide = spec
    wide.upgrade.maxSurge = .count(2)
    let (_, short) = Self.plan([wide], [Self.host(Self.a, memoryGiB: 3, domains: nodes)])
    let error = short.first { $0.code == "plan.capacity" }
    #expect(error?.message.contains("replacing web-1, web-2 of pool web on \(Self.a)") == true && error?.message.contains("short of 1024 MiB of memory") == true, "\(short)")
    #expect(error?.hint?.contains("max_surge") == true)
    var inPlace = spec
    inPlace.upgrade.maxSurge = .count(0)
    inPlace.upgrade.maxUnavailable = .count(1)
    #expect(Self.plan([inPlace], [Self.host(Self.a, memoryGiB: 2, domains: nodes)]).1.isEmpty, "in place: the old node goes first")
  }

  @Test func aResizeMustFitItsHost() {
    let spec = Self.pool(replicas: 1, hosts: [Self.a])
    let bigger = Self.pool(replicas: 1, hosts: [Self.a], memoryMiB: 4096)
    let (_, problems) = Self.plan([bigger], [Self.host(Self.a, memoryGiB: 3, domains: [Self.node(spec, 1)])])
    #expect(problems.contains { $0.code == "plan.capacity" && $0.message.contains("cannot grow") })
  }

  @Test func hostsWithoutCapacityReadAreNotJudged() {
    var h = Self.host(Self.a)
    h.capacity = nil
    #expect(Self.plan([Self.pool(replicas: 50, hosts: [Self.a])], [h]).1.isEmpty)
  }
}
