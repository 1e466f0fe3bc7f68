import DroverModel
import DroverPlan
import Testing

/// #17: `plan` shows which images it sends to which host first, and their size.
@Suite struct ImageTransfersTests {
  func action(_ kind: ActionKind, _ node: String, host: String, digest: String) -> PlannedAction {
    let o = NodeOwnership(
      project: "p", pool: "web", node: node, index: 1, image: "demo@v2", digest: digest, specHash: "", generation: 1, vcpu: 1, memoryMiB: 256,
      diskMiB: 1024, network: nil, labels: [:], protect: false)
    return PlannedAction(kind: kind, pool: "web", node: node, host: host, reason: "", after: NodeDefinition(ownership: o))
  }

  @Test func onlyNewDomainsOnHostsWithTheirOwnFolderAndNoVerifiedCopy() {
    let images = ["k2": TransferableImage(reference: "demo@v2", artifact: "demo-v2-aaaaaaaaaaaa.qcow2", bytes: 3 << 20)]
    let actions = [
      action(.create, "web-1", host: "remote-a", digest: "k2"),
      action(.replace, "web-2", host: "remote-a", digest: "k2"),  // the same image, same host: once
      action(.create, "web-3", host: "local", digest: "k2"),  // uses the local image folder
      action(.update, "web-4", host: "remote-b", digest: "k2"),  // keeps its disk: nothing sent
      action(.create, "web-5", host: "remote-c", digest: "k2"),  // already there, verified
      action(.create, "web-6", host: "remote-d", digest: "k2"),  // there, but never verified
    ]
    let plan = Plan(actions: actions, specDigest: "", world: WorldFingerprint(hosts: [:]))
    var world = ObservedWorld()
    world.hosts["remote-c"] = ObservedHost(uri: "remote-c", domains: [], poolVolumes: ["demo-v2-aaaaaaaaaaaa.qcow2", "demo-v2-aaaaaaaaaaaa.qcow2.verified"])
    world.hosts["remote-d"] = ObservedHost(uri: "remote-d", domains: [], poolVolumes: ["demo-v2-aaaaaaaaaaaa.qcow2"])
    let transfers = ImageTransfers.needed(plan, remoteHosts: ["remote-a", "remote-b", "remote-c", "remote-d"], images: images, observed: world)
    #expect(transfers.map(\.host) == ["remote-a", "remote-d"])
    #expect(transfers.allSatisfy { $0.image == "demo@v2" && $0.bytes == 3 << 20 })
  }
}
