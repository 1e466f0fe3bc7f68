import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #45 on real VMs (TCG, `qemu:///system`), through the built binary. The image's init counts its
/// boots in a file on the node's disk and prints the count, then ticks every second, so "the very
/// disk" and "the very memory" are seen from inside the guest: a hibernated kept node resumed
/// ticks on in `boot 1` (no boot), a stopped one started again says `boot 2`, a rebuilt one
/// `boot 1` with its ticks from 1.
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
          t=0
          while :; do t=$((t + 1)); echo "DROVER ALIVE \(version) boot $n tick $t"; sleep 1; done
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

    /// `keep`: how keep_previous keeps every node (nil: none kept); `inPlace`: max_unavailable 1
    /// instead of surge.
    func pool(replicas: Int, image: String = "warm@v1", keep: KeptState? = .hibernated, inPlace: Bool = false) throws {
      let move = inPlace ? "max_surge: 0, max_unavailable: 1" : "max_surge: 1, max_unavailable: 0"
      try """
        name: wr
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]
        heartbeat: {source: console, pattern: "DROVER ALIVE", interval: 1s, missed: 5}
        upgrade: {canary: 1, waves: [2], \(move), health_timeout: 60s\(keep.map { ", keep_previous: {nodes: 3, for: 1h, shutdown_timeout: 2s, state: \($0.rawValue)}" } ?? "")}

        """.write(to: dir.appendingPathComponent("pools/wr.yaml"), atomically: true, encoding: .utf8)
    }

    func console(_ node: String) -> String {
      (try? String(contentsOfFile: "\(consoleDir)/\(node).log", encoding: .isoLatin1)) ?? ""
    }

    /// The boot and tick of the node's last "ALIVE" line (0, 0: none yet).
    func alive(_ node: String) -> (boot: Int, tick: Int) {
      guard let line = console(node).split(whereSeparator: \.isNewline).last(where: { $0.contains("DROVER ALIVE") }) else { return (0, 0) }
      let words = line.split(whereSeparator: \.isWhitespace)
      func after(_ word: String) -> Int { words.firstIndex(of: Substring(word)).flatMap { words.index(after: $0) < words.endIndex ? Int(words[words.index(after: $0)]) : nil } ?? 0 }
      return (after("boot"), after("tick"))
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

    // v2: each replaced node is kept, hibernated (its memory saved, its QEMU gone); the rollout
    // completes and apply returns.
    try p.pool(replicas: 3, image: "warm@v2")
    let rolled = try p.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.output)")
    #expect(try keptNodes(p) == ["wr-1", "wr-2", "wr-3"])
    let kept = try vmNodes(p).filter { v in originals.contains { $0.uuid == v.uuid } }
    #expect(kept.count == 3 && kept.allSatisfy { $0.id == nil }, "kept nodes hold no QEMU: \(kept)")
    let ticksWhenKept = (1...3).map { p.alive("wr-\($0)").tick }
    #expect(try (1...3).allSatisfy { try backend.connection.domain(named: "wr-\($0)")?.hasManagedSave() == true }, "their memory is saved")
    let status = try p.run(["status"])
    #expect(status.output.contains("kept hibernated until"), "\(status.output)")
    #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0, "kept nodes are nothing to do")
    #expect(try p.run(["drift"]).status == 0, "kept nodes are no drift")
    try expectNoOrphan(p, "kept")

    // Undo: the very domains resume from their saved memory (still boot 1, ticking on from where
    // they were: no boot), nothing is created.
    let warmStart = Date()
    let undo = try p.run(["rollout", "undo", "wr"])
    let warmSeconds = Date().timeIntervalSince(warmStart)
    #expect(undo.status == 0, "\(undo.output)")
    let back = try vmNodes(p)
    #expect(Set(back.map(\.uuid)) == Set(originals.map(\.uuid)) && back.allSatisfy { $0.image == "warm@v1" && $0.id != nil }, "\(back)")
    for i in 1...3 {
      let now = p.alive("wr-\(i)")
      #expect(now.boot == 1 && now.tick > ticksWhenKept[i - 1] && !p.console("wr-\(i)").contains("boot 2"), "wr-\(i): its own memory, no boot\n\(p.console("wr-\(i)").suffix(2000))")
    }
    #expect(!undo.output.contains(": create "), "nothing was created: \(undo.output)")
    try expectNoOrphan(p, "undone")

    // A broken v3 in place, kept stopped: the canary's original is shut down and kept before its
    // replacement is made; the replacement fails its health, the budget is exceeded, and the kept
    // original boots again on its own disk (boot 2).
    try p.pool(replicas: 3, image: "warm@v3", keep: .stopped, inPlace: true)
    let broken = try p.run(["apply", "--auto-approve"])
    #expect(broken.status == 3, "\(broken.output)")
    let after = try vmNodes(p)
    #expect(Set(after.map(\.uuid)) == Set(originals.map(\.uuid)) && after.allSatisfy { $0.image == "warm@v1" }, "\(after)")
    #expect(p.console("wr-1").contains("DROVER READY v1 boot 2"), "the canary's kept original, on its own disk\n\(p.console("wr-1").suffix(2000))")
    #expect(try keptNodes(p).isEmpty)
    try expectNoOrphan(p, "rolled back warm")

    // Today's cold rollback of the same pool, for the same run's ratio: nothing kept.
    try p.pool(replicas: 3, image: "warm@v2", keep: nil)
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    let coldStart = Date()
    let cold = try p.run(["rollout", "undo", "wr"])
    let coldSeconds = Date().timeIntervalSince(coldStart)
    #expect(cold.status == 0, "\(cold.output)")
    #expect(try vmNodes(p).allSatisfy { $0.image == "warm@v1" && $0.generation == 3 }, "rebuilt cold")
    try expectNoOrphan(p, "rolled back cold")
    print(String(format: "warm-rollback bench (3 real VMs, TCG): from hibernated kept nodes %.1f s, cold %.1f s, ratio %.2f× (goal ≤ 0.2×)", warmSeconds, coldSeconds, warmSeconds / coldSeconds))
  }
}
