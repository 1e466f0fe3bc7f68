import DroverBasics
import DroverModel
import DroverPlan
import Testing

/// #45, pure: kept nodes in the capacity ledger. By default they reserve their vCPU and memory
/// (a rollback always fits); when a pool's nodes do not fit otherwise, the plan deletes the kept
/// nodes on their hosts and says why; `capacity: disk-only` kept nodes hold no room; a protected
/// kept node is never reclaimed.
@Suite struct KeptCapacityTests {
  typealias P = PlacementTests
  static let far = 4_000_000_000.0

  /// `web-1-g2`, `web-2-g2` serving (1 GiB each) and their kept predecessors `web-1`, `web-2`.
  static func world(reserves: Bool = true, protect: Bool = false) -> (PoolSpec, ObservedHost) {
    var spec = P.pool(replicas: 2, hosts: [P.a], memoryMiB: 1024)
    var domains: [ObservedDomain] = []
    for i in 1...2 {
      var serving = P.node(spec, i)
      var o = serving.ownership!
      o.generation = 2
      o.node = "web-\(i)-g2"
      serving.ownership = o
      serving.name = o.node
      serving.uuid = "serving-\(i)"
      var kept = P.node(spec, i)
      var k = kept.ownership!
      k.kept = KeptNode(rollout: "web-1", until: far, reserves: reserves)
      k.protect = protect
      kept.ownership = k
      kept.isActive = false
      kept.state = "shut off"
      domains += [serving, kept]
    }
    spec.replicas = 3
    return (spec, P.host(P.a, memoryGiB: 4, domains: domains))
  }

  static func plan(_ spec: PoolSpec, _ host: ObservedHost) -> (Plan, [Diagnostic]) {
    var options = PlanOptions()
    options.now = 1_000_000
    return makePlan(pools: [spec], observed: ObservedWorld(hosts: [P.a: host]), options: options)
  }

  @Test func aPoolThatDoesNotFitTakesTheRoomKeptNodesReserve() {
    let (spec, host) = Self.world()
    let (plan, problems) = Self.plan(spec, host)
    #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
    #expect(plan.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["delete web-1", "delete web-2", "create web-3"])
    #expect(plan.actions.prefix(2).allSatisfy { $0.reason.contains("the plan needs its room") }, "\(plan.actions.map(\.reason))")
    #expect(plan.kept == nil)
  }

  @Test func keptNodesThatGaveUpTheirRoomHoldNone() {
    let (spec, host) = Self.world(reserves: false)
    let (plan, problems) = Self.plan(spec, host)
    #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
    #expect(plan.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["create web-3"])
    #expect(plan.kept?.map(\.node) == ["web-1", "web-2"])
  }

  @Test func aProtectedKeptNodeIsNeverReclaimed() {
    let (spec, host) = Self.world(protect: true)
    let (plan, problems) = Self.plan(spec, host)
    #expect(problems.contains { $0.code == "plan.capacity" }, "\(problems)")
    #expect(!plan.actions.contains { $0.kind == .delete })
  }

  @Test func aKeptNodeNeverBlocksTheNameANewNodeNeeds() {
    // The serving web-1-g2 is gone; the kept web-1 holds the index name: the new node takes the other.
    let (spec, host) = Self.world(reserves: false)
    var h = host
    h.domains.removeAll { $0.name == "web-1-g2" }
    var two = spec
    two.replicas = 2
    let (plan, problems) = Self.plan(two, h)
    #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
    #expect(plan.actions.map { "\($0.kind.rawValue) \($0.node)" } == ["create web-1-g2"], "\(plan.actions.map(\.node))")
  }
}
