import DroverModel
import DroverRollout
import Testing

/// Which domains a replacement step acts on, at every point a crash can leave it.
@Suite struct ReplacementViewTests {
  static func record(generation: Int, image: String) -> NodeOwnership {
    NodeOwnership(
      pool: "web", node: "web-1", index: 1, image: image, digest: "", specHash: "", generation: generation, vcpu: 1, memoryMiB: 256,
      diskMiB: 1024, network: nil, labels: [:], protect: false)
  }

  static let node = RolloutNode(
    key: "web-1", index: 1, host: "h", oldName: "web-1", oldUUID: "old", from: record(generation: 1, image: "demo@v1"),
    to: record(generation: 2, image: "demo@v2"), reason: "image")

  static let original = IndexDomain(name: "web-1", uuid: "old", host: "h", generation: 1)
  static let forward = IndexDomain(name: "web-1-g2", uuid: "new", host: "h", generation: 2)
  static let back = IndexDomain(name: "web-1", uuid: "back", host: "h", generation: 3)

  /// (domains present, rollback?) → (old, new, untouched)
  @Test(arguments: [
    ([original], false, "web-1", nil, false),  // not started
    ([original, forward], false, "web-1", "web-1-g2", false),  // crashed after create
    ([forward], false, nil, "web-1-g2", false),  // crashed after remove-old
    ([original], true, nil, "web-1", true),  // its new version failed and was removed
    ([original, forward], true, "web-1-g2", "web-1", false),  // both left (a failed removal, a crash): keep the original
    ([forward], true, "web-1-g2", nil, false),  // done: goes back
    ([forward, back], true, "web-1-g2", "web-1", false),  // crashed after the rollback's create
    ([back], true, nil, "web-1", false),  // rolled back, crashed before journaling
  ] as [([IndexDomain], Bool, String?, String?, Bool)])
  func decides(_ domains: [IndexDomain], _ rollback: Bool, _ old: String?, _ new: String?, _ untouched: Bool) {
    let view = replacementView(Self.node, domains: domains, rollback: rollback, surge: true)
    #expect(view.old?.name == old)
    #expect(view.new?.name == new)
    #expect(view.untouched == untouched)
  }

  @Test func theRollbackTargetIsTheRecordTheNodeHadBefore() {
    let view = replacementView(Self.node, domains: [Self.forward], rollback: true, surge: true)
    #expect(view.target.image == "demo@v1" && view.target.generation == 3)
    #expect(view.target.node == "web-1", "with surge it takes the index's other name")
    #expect(replacementName(key: "web-1", generation: 2, occupied: ["web-1"]) == "web-1-g2")
    // In place, the old domain is gone when the name is taken.
    #expect(replacementName(key: "web-1", generation: 2, occupied: []) == "web-1")
    #expect(replacementName(key: "web-1", generation: 3, occupied: ["web-1-g2"]) == "web-1")
    // A kept node holds one name, the serving node the other: a third generation takes its own.
    #expect(replacementName(key: "web-1", generation: 4, occupied: ["web-1", "web-1-g3"]) == "web-1-g4")
  }
}
