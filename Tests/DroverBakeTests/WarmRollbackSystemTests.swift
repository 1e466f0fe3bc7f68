import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #45 on real VMs (TCG, `qemu:///system`), through the built binary. The image's init counts its
/// boots in a file on the node's disk and prints the count, so "the very disk" is seen from
/// inside the guest: a kept node started again says `boot 2`, a rebuilt one `boot 1`.
///
/// The same run measures a 3-node rollback from kept nodes against today's cold rollback (the
/// same pool rolled back with nothing kept) and prints the ratio; no time is asserted.
extension BakeSystemTests {
  final class WarmProject: VMTestProject {
    init() throws {
      try super.init("warm")
      for (version, marker) in [("v1", "READY"), ("v2", "READY"), ("v3", "BROKEN")] {
        try """
          #!/bin/busybox sh
          /bin/busybox --install -s /bin
          n=$(cat /boots 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /boots; sync
          echo "DROVER \(marker) \(version) boot $n"
          exec sh -c 'while :; do sleep 3600; done'
          """.write(to: dir.appendingPathComponent("images/files/init-\(version)"), atomically: true, encoding: .utf8)
        try """
          name: warm
          version: \(version)
          base: {rootfs: busybox}
          files: [{source: files/init-\(version), path: /init, mode: "0755"}]
          cmdline: console=ttyS0 panic=-1 quiet
          size: 32MiB

          """.write(to: dir.appendingPathComponent("images/\(version).yaml"), atomically: true, encoding: .utf8)
      }
    }

    /// `keep`: keep_previous for every node; `inPlace`: max_unavailable 1 instead of surge.
    func pool(replicas: Int, image: String = "warm@v1", keep: Bool = true, inPlace: Bool = false) throws {
      let move = inPlace ? "max_surge: 0, max_unavailable: 1" : "max_surge: 1, max_unavailable: 0"
      try """
        name: wr
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]
        upgrade: {canary: 1, waves: [2], \(move), health_timeout: 60s\(keep ? ", keep_previous: {nodes: 3, for: 1h, shutdown_timeout: 2s}" : "")}

        """.write(to: dir.appendingPathComponent("pools/wr.yaml"), atomically: true, encoding: .utf8)
    }

    func console(_ node: String) -> String {
      (try? String(contentsOfFile: "\(consoleDir)/\(node).log", encoding: .isoLatin1)) ?? ""
    }

    func cleanUp(_ connection: Connection) {
      try? pool(replicas: 0)
      _ = try? run(["apply", "--auto-approve"])
      _ = try? run(["rollout", "finish", "wr"])
      removeAll(connection)
    }
  }

  /// Kept domains of the project (shut off, `role="kept"`), by name.
  func keptNodes(_ p: VMTestProject) throws -> [String] {
    try backend.connection.allDomains().compactMap { d -> String? in
      guard let meta = try? d.metadata(namespace: OwnershipMetadata.namespace), let o = OwnershipMetadata.parse(meta), o.project == p.project, o.kept != nil
      else { return nil }
      return d.name
    }.sorted()
  }

  @Test func warmRollbackStartsTheKeptNodesOnTheirOwnDisks() throws {
    let p = try WarmProject()
    defer { p.cleanUp(backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    try p.pool(replicas: 3)
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    let originals = try vmNodes(p)
    #expect(originals.count == 3 && (1...3).allSatisfy { p.console("wr-\($0)").contains("DROVER READY v1 boot 1") })

    // v2: each replaced node is kept, shut off; the rollout completes and apply returns.
    try p.pool(replicas: 3, image: "warm@v2")
    let rolled = try p.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.output)")
    #expect(try keptNodes(p) == ["wr-1", "wr-2", "wr-3"])
    let kept = try vmNodes(p).filter { v in originals.contains { $0.uuid == v.uuid } }
    #expect(kept.count == 3 && kept.allSatisfy { $0.id == nil }, "kept nodes are shut off: \(kept)")
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0, "kept nodes are nothing to do")
    #expect(try p.run(["drift"]).status == 0, "kept nodes are no drift")
    try expectNoOrphan(p, "kept")

    // Undo: the very domains start again on their own disks (boot 2), nothing is created.
    let warmStart = Date()
    let undo = try p.run(["rollout", "undo", "wr"])
    let warmSeconds = Date().timeIntervalSince(warmStart)
    #expect(undo.status == 0, "\(undo.output)")
    let back = try vmNodes(p)
    #expect(Set(back.map(\.uuid)) == Set(originals.map(\.uuid)) && back.allSatisfy { $0.image == "warm@v1" && $0.id != nil }, "\(back)")
    for i in 1...3 { #expect(p.console("wr-\(i)").contains("DROVER READY v1 boot 2"), "wr-\(i): its own disk\n\(p.console("wr-\(i)"))") }
    #expect(!undo.output.contains(": create "), "nothing was created: \(undo.output)")
    try expectNoOrphan(p, "undone")

    // A broken v3 in place: the canary's original is kept before its replacement is made; the
    // replacement fails its health, the budget is exceeded, and the kept original starts again.
    try p.pool(replicas: 3, image: "warm@v3", inPlace: true)
    let broken = try p.run(["apply", "--auto-approve"])
    #expect(broken.status == 3, "\(broken.output)")
    let after = try vmNodes(p)
    #expect(Set(after.map(\.uuid)) == Set(originals.map(\.uuid)) && after.allSatisfy { $0.image == "warm@v1" }, "\(after)")
    #expect(p.console("wr-1").contains("DROVER READY v1 boot 3"), "the canary's kept original, on its own disk\n\(p.console("wr-1"))")
    #expect(try keptNodes(p).isEmpty)
    try expectNoOrphan(p, "rolled back warm")

    // Today's cold rollback of the same pool, for the same run's ratio: nothing kept.
    try p.pool(replicas: 3, image: "warm@v2", keep: false)
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    let coldStart = Date()
    let cold = try p.run(["rollout", "undo", "wr"])
    let coldSeconds = Date().timeIntervalSince(coldStart)
    #expect(cold.status == 0, "\(cold.output)")
    #expect(try vmNodes(p).allSatisfy { $0.image == "warm@v1" && $0.generation == 3 }, "rebuilt cold")
    try expectNoOrphan(p, "rolled back cold")
    print(String(format: "warm-rollback bench (3 real VMs, TCG): from kept nodes %.1f s, cold %.1f s, ratio %.2f×", warmSeconds, coldSeconds, warmSeconds / coldSeconds))
  }
}
