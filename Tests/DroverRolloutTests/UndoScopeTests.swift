import DroverModel
import DroverRollout
import Testing

/// `drover rollout undo` puts back only what the rollout changed (#45): a node it replaced that
/// is gone or was replaced again since blocks the undo, and says which and why.
@Suite struct UndoScopeTests {
  static func state() -> RolloutState {
    var state = RolloutState(id: "r", pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: [["web-1"], ["web-2"]], policy: RolloutPolicy(canary: 1, waves: [1], maxSurge: 1, maxUnavailable: 0, budget: 0))
    for i in 1...2 {
      state.nodes["web-\(i)"] = RolloutNode(
        key: "web-\(i)", index: i, host: "a", oldName: "web-\(i)", oldUUID: "u\(i)", from: NodeStepTests.record(generation: 1, image: "demo@v1"),
        to: NodeStepTests.record(generation: 2, image: "demo@v2"), reason: "image")
    }
    return state
  }

  @Test(arguments: [
    ([1: [2], 2: [2]], [String]()),
    ([1: [2], 2: [2], 3: [1]], []),  // scaled up since: the new node is not the rollout's
    ([1: [2]], ["web-2 is gone (scaled down or removed since)"]),
    ([1: [3], 2: [2]], ["web-1 was changed since (generation 3, the rollout left 2)"]),
    ([1: [2, 3], 2: [2]], ["web-1 was changed since (generation 2, 3, the rollout left 2)"]),
  ] as [([Int: [Int]], [String])])
  func onlyWhatTheRolloutLeftMayBeUndone(_ serving: [Int: [Int]], _ expected: [String]) {
    #expect(undoBlockers(Self.state(), serving: serving) == expected)
  }
}
