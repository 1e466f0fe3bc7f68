import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #39 on real VMs: an apply wide enough for lanes (`Executor.laneThreshold` nodes on one host)
/// creates every node on `qemu:///system` through connections of their own, each node booting
/// from its own overlay, every one healthy, and removes them all again with nothing left behind.
extension BakeSystemTests {
  @Test func aWideApplyOnLanesBootsEveryNodeFromItsOwnDisk() throws {
    let p = try Day2Project()
    defer { p.cleanUp(backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    // 16 single-vCPU nodes on this 2-CPU machine: above the default 4 vCPUs per CPU.
    try "project: \(p.project)\nhosts:\n  - {name: here, uri: \"qemu:///system\", max_vcpu_ratio: 10}\n".write(to: p.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    // 16 TCG boots at once share 2 cores: each takes minutes, not the usual seconds. Not
    // `Day2Project.pool`: its upgrade policy's `health_timeout: 60s` bounds every health wait.
    try """
      name: d2s
      hosts: [qemu:///system]
      replicas: 16
      image: day2@v1
      health: [{type: console, pattern: "DROVER READY", timeout: 5m, interval: 1s, retries: 0}]
      """.write(to: p.dir.appendingPathComponent("pools/d2s.yaml"), atomically: true, encoding: .utf8)
    let created = try p.run(["apply", "--auto-approve", "--call-timeout", "120"])
    #expect(created.status == 0, "\(created.output)")
    let nodes = try vmNodes(p)
    #expect(nodes.count == 16 && Set(nodes.map(\.disk)).count == 16, "16 nodes, 16 disks")
    for node in nodes {
      #expect(p.console(node.name).contains("DROVER READY v1 boot 1"), "\(node.name) booted from its own new disk")
    }
    try expectNoOrphan(p, "created on lanes")
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0, "apply then plan: no changes")
    try p.pool(replicas: 0)
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    #expect(try vmNodes(p).isEmpty)
    try expectNoOrphan(p, "removed")
  }
}
