import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Testing

/// #42 end to end, in-process: rollouts on the fake host whose drains run the **real kubectl**
/// against the API server stand-in. A PodDisruptionBudget that never allows evicting web-1's pod:
/// with `on_timeout: fail` the canary fails naming the pod and the original is back in service on
/// the server's side; with `force` the node is replaced anyway. A replaced node is then drained
/// under its own registered name (its hostname, `web-1-g2`), never its predecessor's.
@Suite(.serialized) struct KubernetesRolloutTests {
  typealias R = RolloutRunnerFakeHostTests

  static func roll(_ fleet: R.Fleet, _ api: KubeStandin, onTimeout: DrainSpec.OnTimeout) throws -> RolloutOutcome {
    fleet.pool.drain = DrainSpec(
      backend: .kubernetes(kubeconfig: api.kubeconfig, gracePeriod: .seconds(1), kubectl: "/usr/bin/kubectl"), timeout: .seconds(6), onTimeout: onTimeout)
    let drainer = Drainers.make(fleet.pool.drain, hostPaths: HostPathPolicy(project: nil, allowed: [api.dir]))
    let preview = try #require(try fleet.plan().rollouts.first)
    return try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(prober: FakeProber(), drainer: drainer, sleep: { _ in })
    ).run(preview)
  }

  static func world(_ api: KubeStandin) throws {
    // Every node's kubelet registered under its hostname: the originals and their replacements.
    try api.set(
      nodes: ["web-1", "web-2", "web-3", "web-1-g2", "web-2-g2", "web-3-g2", "web-1-g3", "web-2-g3", "web-3-g3"],
      pods: ["default/app-1": ("web-1", "guarded"), "default/app-2": ("web-2", "free"), "default/app-3": ("web-3", "free")],
      pdbs: ["guarded-pdb": ("default", "guarded", nil)])
  }

  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl")))
  func aBlockedDrainFailsTheNodeNamingThePodAndTheOriginalServesAgain() throws {
    let api = try KubeStandin()
    defer { api.stop() }
    try Self.world(api)
    let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let outcome = try Self.roll(fleet, api, onTimeout: .fail)
    #expect(outcome.state.status == .rolledBack)
    let why = outcome.state.failed["web-1"] ?? ""
    #expect(why.contains("timed out") && why.contains("default/app-1") && why.contains("PodDisruptionBudget"), "the cause is named: \(why)")
    #expect(fleet.shape == ["web-1 g1 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"])
    #expect(try api.unschedulable("web-1") == false, "the original is schedulable again on the server")
    #expect(try api.pods().contains("default/app-1"), "the guarded pod was never evicted")
    // The journal says what held the drain.
    let journal = try fleet.journal().records()
    #expect(journal.contains { $0.step == "drain" && ($0.detail ?? "").contains("default/app-1") }, "\(journal.map { "\($0.event.rawValue) \($0.step ?? "") \($0.detail ?? "")" })")
  }

  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl")))
  func forceReplacesTheBlockedNodeAndTheReplacementIsDrainedUnderItsOwnName() throws {
    let api = try KubeStandin()
    defer { api.stop() }
    try Self.world(api)
    let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let forced = try Self.roll(fleet, api, onTimeout: .force)
    #expect(forced.state.status == .completed, "\(forced.summary)")
    #expect(fleet.shape == ["web-1-g2 g2 demo@v2", "web-2-g2 g2 demo@v2", "web-3-g2 g2 demo@v2"])
    // Back to v1: the nodes now drained are the replacements, each under its own hostname.
    fleet.pool.image = ImageRef(parsing: "demo@v1")!
    let back = try Self.roll(fleet, api, onTimeout: .fail)
    #expect(back.state.status == .completed, "\(back.summary)")
    let patched = Set(try api.requests().filter { $0.method == "PATCH" }.map(\.path))
    #expect(patched.isSuperset(of: ["/api/v1/nodes/web-1-g2", "/api/v1/nodes/web-2-g2", "/api/v1/nodes/web-3-g2"]), "\(patched.sorted())")
    #expect(try api.unschedulable("web-1-g2") == true, "the replaced node was cordoned under its own registered name")
  }
}
