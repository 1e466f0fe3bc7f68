import Foundation
import Libvirt
import Testing

/// #21.2 on real disks: a plan saved in one checkout and applied in another after its image was
/// rebaked (same reference, new content) is refused, naming the image and changing nothing; a
/// plan made after the rebake is applied there and its real VM boots the new build. `bake --json`
/// lines are checked against their schema on the way.
extension BakeSystemTests {
  final class SavedPlanProject: VMTestProject {
    init() throws {
      try super.init("splan")
      try writeInit("one")
      try """
        name: splan
        version: v1
        base: {rootfs: busybox}
        files: [{source: files/init, path: /init, mode: "0755"}]
        cmdline: console=ttyS0 panic=-1 quiet
        size: 32MiB

        """.write(to: dir.appendingPathComponent("images/v1.yaml"), atomically: true, encoding: .utf8)
      try """
        name: sp
        hosts: [qemu:///system]
        replicas: 1
        image: splan@v1
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]

        """.write(to: dir.appendingPathComponent("pools/sp.yaml"), atomically: true, encoding: .utf8)
    }

    func writeInit(_ build: String, in folder: URL? = nil) throws {
      try """
        #!/bin/busybox sh
        echo "DROVER READY build \(build)"
        exec /bin/busybox sh -c 'while :; do /bin/busybox sleep 3600; done'
        """.write(to: (folder ?? dir).appendingPathComponent("images/files/init"), atomically: true, encoding: .utf8)
    }

    /// Another checkout of the same project (a copy of its files; the same image host).
    func checkout() throws -> URL {
      let copy = dir.deletingLastPathComponent().appendingPathComponent(dir.lastPathComponent + "-b")
      try? FileManager.default.removeItem(at: copy)
      try FileManager.default.copyItem(at: dir, to: copy)
      return copy
    }
  }

  static func schemaProblems(_ name: String, _ text: String) throws -> (Int32, String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bake-\(UUID().uuidString.prefix(8)).json")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try DroverProcess.run("/usr/bin/env", ["python3", repo.appendingPathComponent("scripts/check-json").path, name, file.path], environment: [:])
  }

  @Test func aPlanAppliedAfterItsImageWasRebakedIsRefused() throws {
    let p = try SavedPlanProject()
    let b = try p.checkout()
    defer {
      try? "name: sp\nhosts: [qemu:///system]\nreplicas: 0\nimage: splan@v1\n".write(to: b.appendingPathComponent("pools/sp.yaml"), atomically: true, encoding: .utf8)
      _ = try? p.run(["apply", "--auto-approve"], in: b)
      try? FileManager.default.removeItem(at: b)
      p.removeAll(backend.connection)
    }
    let baked = try p.run(["bake", "--json"])
    #expect(baked.status == 0, "\(baked.output)")
    let bakeLines = baked.output.split(separator: "\n").filter { $0.hasPrefix("{") }.joined(separator: "\n")
    let checked = try Self.schemaProblems("bake-event", bakeLines)
    #expect(checked.0 == 0, "bake --json: \(checked.1)\n\(bakeLines)")

    let planned = try p.run(["plan", "--out", "plans/ci.plan"])
    #expect(planned.status == 0, "\(planned.output)")
    try FileManager.default.createDirectory(at: b.appendingPathComponent("plans"), withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: p.dir.appendingPathComponent("plans/ci.plan"), to: b.appendingPathComponent("plans/ci.plan"))
    // The recipe's file changes and the image is baked again under the same reference.
    try p.writeInit("two")
    let rebaked = try p.run(["bake"])
    #expect(rebaked.status == 0 && rebaked.output.contains("built"), "\(rebaked.output)")

    let refused = try p.run(["apply", "plans/ci.plan"], in: b)
    #expect(refused.status == 1, "\(refused.output)")
    #expect(refused.output.contains("image splan@v1 was rebaked since the plan was saved: sha256:") && refused.output.contains("No action was taken"), "\(refused.output)")
    #expect(try vmNodes(p).isEmpty, "nothing was created")

    // A plan made now, in checkout b, is applied: the node boots the new build from its overlay.
    try p.writeInit("two", in: b)
    #expect(try p.run(["plan", "--out", "plans/ci.plan"], in: b).status == 0)
    let applied = try p.run(["apply", "plans/ci.plan"], in: b)
    #expect(applied.status == 0, "\(applied.output)")
    let console = (try? String(contentsOfFile: "\(p.consoleDir)/sp-1.log", encoding: .isoLatin1)) ?? ""
    #expect(console.contains("DROVER READY build two"), "\(console)")
    #expect(try vmNodes(p).count == 1)
  }
}
