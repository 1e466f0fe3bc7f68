import DroverEngine
import Foundation
import Testing

/// #45 through the binary on libvirtd's test driver: `keep_previous` keeps the replaced nodes
/// hibernated (their memory saved, libvirt's managed save) with their disks (shown as kept by plan, status and drift, never drift, never a
/// replica); `rollout undo` starts those very domains again (same UUIDs, nothing created) and
/// removes their replacements; `rollout finish`, the next rollout and the end of `for` remove
/// kept nodes; overlays always match the domains.
@Suite(.serialized) struct WarmRollbackCLITests {
  static func keep(_ duration: String) -> String {
    "upgrade: {max_surge: 1, keep_previous: {nodes: 2, for: \(duration), shutdown_timeout: 1s}}\n"
  }

  @Test func keptNodesUndoFinishAndExpiry() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("warm")
    defer {
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"])
      _ = try? h.run(["rollout", "finish", pool])
    }
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: Self.keep("1h"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let originals = try h.nodes(pool)
    #expect(originals.count == 2)

    try h.writePool(pool, replicas: 2, image: "demo@v2", extra: Self.keep("1h"))
    let plan = try h.run(["plan"])
    #expect(plan.stdout.contains("keeps \(pool)-1, \(pool)-2 hibernated (memory saved to disk) with their disks for 1h"), "\(plan.stdout)")
    let rolled = try h.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.stdout)\(rolled.stderr)")
    let after = try h.nodes(pool)
    #expect(after.count == 4, "two serving, two kept: \(after.map(\.name))")
    let kept = after.filter { v in originals.contains { $0.uuid == v.uuid } }
    #expect(kept.count == 2 && kept.allSatisfy { $0.image == "demo@v1" && $0.id == nil }, "the originals, shut off: \(kept)")
    try h.expectOverlaysMatchDomains(pool, "after the rollout")

    // Kept, not drift, not a replica: the plan has nothing to do and says what it keeps.
    let quiet = try h.run(["plan"])
    #expect(quiet.stdout.contains("No changes") && quiet.stdout.contains("Kept for rollback"), "\(quiet.stdout)")
    let planJSON = try h.run(["plan", "--json"])
    try JSONContractTests.expectValid("plan", planJSON.stdout)
    #expect((try h.json(planJSON.stdout)["kept"] as? [[String: Any]])?.count == 2)
    let status = try h.run(["status", "--json"])
    try JSONContractTests.expectValid("status", status.stdout)
    let roles = ((try h.json(status.stdout)["nodes"] as? [[String: Any]]) ?? []).filter { ($0["pool"] as? String) == pool }.compactMap { $0["role"] as? String }
    #expect(roles.sorted() == ["kept", "kept", "serving", "serving"], "\(status.stdout)")
    let states = ((try h.json(status.stdout)["nodes"] as? [[String: Any]]) ?? []).compactMap { $0["kept_state"] as? String }
    #expect(states == ["hibernated", "hibernated"], "their memory saved (keep_previous.state defaults to hibernated): \(status.stdout)")
    let drift = try h.run(["drift", "--json"])
    #expect(drift.status == 0, "kept nodes are no drift: \(drift.stdout)")
    #expect(drift.stdout.contains("\"kind\" : \"kept\"") || drift.stdout.contains("\"kind\":\"kept\""), "\(drift.stdout)")

    // Undo: the kept domains serve again, their replacements go, nothing is created.
    let undo = try h.run(["rollout", "undo", pool])
    #expect(undo.status == 0, "\(undo.stdout)\(undo.stderr)")
    let back = try h.nodes(pool)
    #expect(Set(back.map(\.uuid)) == Set(originals.map(\.uuid)), "the very domains: \(back.map(\.name))")
    #expect(back.allSatisfy { $0.image == "demo@v1" && $0.id != nil }, "running on v1: \(back)")
    try h.expectOverlaysMatchDomains(pool, "after undo")
    let history = try h.run(["rollout", "status", "--json", pool])
    #expect(history.stdout.contains("\"rolled-back\""), "\(history.stdout)")
    #expect(try h.run(["rollout", "undo", pool]).status != 0, "nothing completed is left to undo")

    // Rolled forward again (the spec still says v2), then finish removes what it kept.
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.nodes(pool).count == 4)
    let finish = try h.run(["rollout", "finish", pool])
    #expect(finish.status == 0, "\(finish.stdout)\(finish.stderr)")
    #expect(finish.stdout.contains("kept node: drover rollout finish"), "\(finish.stdout)")
    #expect(try h.nodes(pool).map(\.image) == ["demo@v2", "demo@v2"])
    try h.expectOverlaysMatchDomains(pool, "after finish")

    // A short `for`: once it passes, the next apply removes what the rollout kept.
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: Self.keep("2s"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.nodes(pool).count == 4)
    Thread.sleep(forTimeInterval: 3)
    let expired = try h.run(["plan"])
    #expect(expired.stdout.contains("its time has passed"), "\(expired.stdout)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.nodes(pool).map(\.image) == ["demo@v1", "demo@v1"])
    try h.expectOverlaysMatchDomains(pool, "after expiry")
  }
}
