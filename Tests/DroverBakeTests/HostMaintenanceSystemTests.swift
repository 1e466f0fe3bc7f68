import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #19 on two real libvirt hosts (qemu:///system and the second host's session daemon over
/// qemu+ssh): a host too small for a surge is a plan error naming it; `host drain` moves every
/// node to the other host through the rollout engine, health-checked, and a `kill -9` halfway
/// then a second run converge; `host uncordon` lets new nodes back.
extension BakeSystemTests {
  @Test(.enabled(if: SecondHost.available, "needs the second host (scripts/second-host)"))
  func aHostIsDrainedThroughTheRolloutEngineAndASurgeThatDoesNotFitIsRefused() throws {
    let p = try TwoHostProject()
    let h2 = try Connection.open(SecondHost.connectURI, timeout: 30)
    defer { p.cleanUp(local: backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    try p.pool(replicas: 4)
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    #expect(try nodes(on: backend.connection, project: p.project).count == 2 && nodes(on: h2, project: p.project).count == 2)
    let listed = try p.run(["host", "list"])
    #expect(listed.status == 0 && listed.output.contains("h2") && listed.output.contains("ready"), "\(listed.output)")

    // h2 made too small for one more node beside its two (160 MiB each): its entry's ratio
    // allows 400 MiB of the machine's memory. A roll with surge is refused before anything.
    let total = try h2.nodeMemory().totalBytes
    let ratio = max(0.01, Double(400 << 20) / Double(total))
    #expect(Double(total) * ratio < Double(480 << 20) && Double(total) * ratio >= Double(320 << 20), "the ratio leaves room for exactly the two nodes")
    let yaml = p.dir.appendingPathComponent("drover.yaml")
    let original = try String(contentsOf: yaml, encoding: .utf8)
    try original.replacingOccurrences(of: "image_dir: \(p.remoteImageDir)}", with: "image_dir: \(p.remoteImageDir), max_memory_ratio: \(String(format: "%.4f", ratio))}")
      .write(to: yaml, atomically: true, encoding: .utf8)
    try p.pool(replicas: 4, image: "twohost@v2")
    let refused = try p.run(["plan"])
    #expect(refused.status == 1 && refused.output.contains("on \(SecondHost.uri) does not fit") && refused.output.contains("short of"), "\(refused.output)")
    #expect(refused.output.contains("max_surge"), "the hint names the way out: \(refused.output)")
    try original.write(to: yaml, atomically: true, encoding: .utf8)
    try p.pool(replicas: 4)

    // Drain h1, killed (SIGKILL) right after its second move created the new node on h2.
    let killed = try p.run(["host", "drain", "h1", "--auto-approve"], extra: ["DROVER_CRASH_AT": "step-done:create#2"])
    #expect(killed.status != 0, "\(killed.output)")
    #expect(killed.output.contains("is cordoned"), "\(killed.output)")
    let mid = try nodes(on: h2, project: p.project)
    #expect(mid.count == 4, "the first move is done and the second node's replacement exists: \(mid)")
    let cordoned = try p.run(["host", "list"])
    #expect(cordoned.output.contains("cordoned"), "\(cordoned.output)")
    // A plain plan meanwhile leaves the rollout to its journal and places nothing on h1.
    let again = try p.run(["host", "drain", "h1", "--auto-approve"])
    #expect(again.status == 0, "\(again.output)")
    #expect(again.output.contains("resuming rollout"), "\(again.output)")
    #expect(try nodes(on: backend.connection, project: p.project).isEmpty, "every node left h1")
    let moved = try nodes(on: h2, project: p.project)
    #expect(moved.count == 4 && Set(moved.values) == ["twohost@v1"], "\(moved)")
    let pool = try #require(try backend.connection.storagePool(named: p.imagePool))
    try pool.refresh()
    #expect(try pool.volumeNames().filter { $0.hasPrefix("drover.") }.isEmpty, "no overlay left on h1")
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0, "converged: nothing left to do")

    // Cordoned, h1 gets nothing new; uncordoned, a scale-up goes there (the emptier host).
    try p.pool(replicas: 5)
    let stillCordoned = try p.run(["plan"])
    #expect(stillCordoned.output.contains("\(p.pool)-5 on \(SecondHost.uri)"), "\(stillCordoned.output)")
    #expect(try p.run(["host", "uncordon", "h1"]).status == 0)
    let back = try p.run(["apply", "--auto-approve"])
    #expect(back.status == 0 && back.output.contains("\(p.pool)-5 on qemu:///system"), "\(back.output)")
    #expect(try nodes(on: backend.connection, project: p.project).keys.sorted() == ["\(p.pool)-5"])
  }
}
