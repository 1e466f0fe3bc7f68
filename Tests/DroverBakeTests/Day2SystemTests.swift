import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// Day-2 on real disks: real QEMU VMs (TCG) on `qemu:///system`, driven through the built binary
/// as a user would. The image's init counts its boots in a file on the node's disk and prints the
/// count, so "same disk" is seen from inside the guest, not only in the domain XML.
///
/// In the serialized `BakeSystemTests` suite: real VMs from different tests never compete.
extension BakeSystemTests {
  final class Day2Project: VMTestProject {
    init() throws {
      try super.init("day2")
      for (version, marker) in [("v1", "READY"), ("v2", "BROKEN")] {
        try """
          #!/bin/busybox sh
          /bin/busybox --install -s /bin
          n=$(cat /boots 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /boots; sync
          echo "DROVER \(marker) \(version) boot $n"
          exec sh -c 'while :; do sleep 3600; done'
          """.write(to: dir.appendingPathComponent("images/files/init-\(version)"), atomically: true, encoding: .utf8)
        try """
          name: day2
          version: \(version)
          base: {rootfs: busybox}
          files: [{source: files/init-\(version), path: /init, mode: "0755"}]
          cmdline: console=ttyS0 panic=-1 quiet
          size: 32MiB

          """.write(to: dir.appendingPathComponent("images/\(version).yaml"), atomically: true, encoding: .utf8)
      }
    }

    func pool(replicas: Int, image: String = "day2@v1", extra: String = "") throws {
      try """
        name: d2s
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]
        upgrade: {canary: 1, waves: [1], max_surge: 1, max_unavailable: 0, health_timeout: 60s}
        \(extra)
        """.write(to: dir.appendingPathComponent("pools/d2s.yaml"), atomically: true, encoding: .utf8)
    }

    func console(_ node: String) -> String {
      (try? String(contentsOfFile: "\(consoleDir)/\(node).log", encoding: .isoLatin1)) ?? ""
    }

    func cleanUp(_ connection: Connection) {
      try? pool(replicas: 0)
      _ = try? run(["apply", "--auto-approve"])
      removeAll(connection)
    }
  }

  struct VMNode: Hashable {
    var name: String
    var uuid: String
    var id: UInt32?
    var disk: String
    var generation: Int
    var image: String
  }

  func vmNodes(_ p: VMTestProject) throws -> [VMNode] {
    try backend.connection.allDomains().compactMap { d -> VMNode? in
      guard let meta = try? d.metadata(namespace: OwnershipMetadata.namespace), let o = OwnershipMetadata.parse(meta), o.project == p.project
      else { return nil }
      return VMNode(name: d.name, uuid: d.uuid, id: d.id, disk: o.disk, generation: o.generation, image: o.image)
    }.sorted { $0.name < $1.name }
  }

  /// Overlays of the project in its pool, and the disks its domains use: always equal.
  func expectNoOrphan(_ p: VMTestProject, _ context: String) throws {
    try backend.connection.storagePool(named: p.imagePool)?.refresh()
    let volumes = try backend.connection.storagePool(named: p.imagePool)?.volumeNames()
      .filter { $0.hasPrefix("drover.\(p.project).") }.map { "\(p.imagePool)/\($0)" }.sorted() ?? []
    // A seeded node's seed volume goes with its overlay (same name, `.seed`).
    let overlays = volumes.filter { !$0.hasSuffix(".seed") }
    let seeds = volumes.filter { $0.hasSuffix(".seed") }
    let disks = try vmNodes(p).map(\.disk).sorted()
    #expect(overlays == disks, "\(context): every overlay belongs to exactly one domain")
    #expect(seeds.allSatisfy { overlays.contains(String($0.dropLast(".seed".count)) + ".qcow2") }, "\(context): no seed without its node: \(seeds)")
  }


  @Test func day2OnRealVMsKeepsDisksAndLeavesNoOrphan() throws {
    let p = try Day2Project()
    defer { p.cleanUp(backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    try p.pool(replicas: 2)
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    let first = try vmNodes(p)
    #expect(first.count == 2 && p.console("d2s-1").contains("DROVER READY v1 boot 1"))
    try expectNoOrphan(p, "created")

    // Labels: in place; no restart (same domain id), same disk; drift clean.
    try p.pool(replicas: 2, extra: "labels: {team: sre}")
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    let labelled = try vmNodes(p)
    #expect(labelled.map(\.uuid) == first.map(\.uuid) && labelled.map(\.id) == first.map(\.id) && labelled.map(\.disk) == first.map(\.disk))
    #expect(try p.run(["drift"]).status == 0, "a label change is not drift")

    // Memory: a restart on the same disk — the guest sees its second boot.
    try p.pool(replicas: 2, extra: "labels: {team: sre}\nresources: {memory: 320MiB}")
    let resize = try p.run(["apply", "--auto-approve"])
    #expect(resize.status == 0, "\(resize.output)")
    let resized = try vmNodes(p)
    #expect(resized.map(\.uuid) == first.map(\.uuid) && resized.map(\.disk) == first.map(\.disk) && resized.allSatisfy { $0.generation == 1 })
    #expect(zip(resized, first).allSatisfy { $0.id != $1.id }, "restarted")
    // libvirt starts each boot's console log afresh: it holds only the second boot.
    #expect(p.console("d2s-1").contains("DROVER READY v1 boot 2"), "the same disk: the guest counted a second boot\n\(p.console("d2s-1"))")
    #expect(!p.console("d2s-1").contains("boot 1"))
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0)
    try expectNoOrphan(p, "resized")

    // --replace: a new domain on a new overlay; the old overlay is gone.
    let replace = try p.run(["apply", "--auto-approve", "--replace", "d2s-2"])
    #expect(replace.status == 0, "\(replace.output)")
    let replaced = try vmNodes(p)
    #expect(replaced.count == 2 && !replaced.map(\.uuid).contains(first[1].uuid) && replaced.map(\.generation).sorted() == [1, 2])
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0)
    try expectNoOrphan(p, "replaced")

    // A broken image: the canary fails its health check and the rollout rolls back.
    try p.pool(replicas: 2, image: "day2@v2", extra: "labels: {team: sre}\nresources: {memory: 320MiB}")
    let broken = try p.run(["apply", "--auto-approve"])
    #expect(broken.status == 3, "\(broken.output)")
    #expect(try vmNodes(p).allSatisfy { $0.image == "day2@v1" })
    try expectNoOrphan(p, "rolled back")

    // Scale down: no overlay left.
    try p.pool(replicas: 0)
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    #expect(try vmNodes(p).isEmpty)
    try expectNoOrphan(p, "scaled to 0")
  }
}
