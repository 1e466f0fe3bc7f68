import DroverBasics
import DroverModel
import Foundation
import Testing

@testable import DroverBake

/// #16: what lies in an image folder — folders, names, manifests — is checked before Drover
/// writes, deletes or boots through it.
@Suite struct ImageFolderTests {
  func scratch() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-imgdir-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    chmod(dir, 0o755)
    return dir
  }

  /// A `.machines` or `.staging` someone else made could hold links QEMU or mkfs would write through.
  @Test func aFolderSomeoneElseMadeOrCanWriteIsRefused() throws {
    let root = try scratch()
    defer { try? FileManager.default.removeItem(atPath: root) }
    mkdir(root + "/.staging", 0o755)
    chown(root + "/.staging", 65534, 65534)
    #expect((#expect(throws: Diagnostic.self) { try SafeFiles.directory(".staging", in: root) })?.message.contains("belongs to uid 65534") == true)
    #expect(throws: Diagnostic.self) { try SafeFiles.entries(of: ".staging", in: root) }
    mkdir(root + "/.machines", 0o755)
    chmod(root + "/.machines", 0o777)
    #expect((#expect(throws: Diagnostic.self) { try SafeFiles.directory(".machines", in: root) })?.message.contains("others can write it") == true)
    #expect(try SafeFiles.directory("logs", in: root) == root + "/logs")
  }

  /// A run's own folder (`<key>-<pid>`) is made anew: a leftover with planted links from an
  /// earlier process with the same pid is removed, links as links.
  @Test func aFreshFolderReplacesALeftoverWithoutFollowingItsLinks() throws {
    let root = try scratch(), outside = try scratch()
    defer {
      try? FileManager.default.removeItem(atPath: root)
      try? FileManager.default.removeItem(atPath: outside)
    }
    try "precious".write(toFile: outside + "/victim", atomically: true, encoding: .utf8)
    let stage = root + "/0123456789ab-1"
    try FileManager.default.createDirectory(atPath: stage + "/deep/er", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: stage + "/disk.raw", withDestinationPath: outside + "/victim")
    try FileManager.default.createSymbolicLink(atPath: stage + "/deep/out", withDestinationPath: outside)
    // A name that is not UTF-8 is still removed by its bytes.
    let odd: [CChar] = Array("\(stage)/deep/er/bad-".utf8CString.dropLast()) + [CChar(bitPattern: 0xFF), 0]
    let fd = open(odd, O_CREAT | O_WRONLY, 0o644)
    close(fd)
    #expect(try SafeFiles.directory("0123456789ab-1", in: root, fresh: true) == stage)
    #expect(try FileManager.default.contentsOfDirectory(atPath: stage).isEmpty)
    #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "precious")
  }

  func manifest(kernel: String, initrd: String) -> ImageManifest {
    ImageManifest(
      name: "demo", version: "v1", key: String(repeating: "a", count: 64), recipe: ImageRecipe(name: "demo", version: "v1", base: .rootfs("busybox")),
      inputs: [:], tools: [:], artifact: "demo-v1-aaaaaaaaaaaa.qcow2", artifactSHA256: "", sizeBytes: 0, kernel: kernel, initrd: initrd,
      cmdline: "", buildLog: "", created: Date(), timings: [:])
  }

  /// A manifest planted in the image folder naming `initrd: /etc/shadow` would have libvirt load
  /// that file into a VM's memory.
  @Test func aManifestNeverChoosesTheHostFilesANodeBoots() throws {
    let images = try scratch()
    defer { try? FileManager.default.removeItem(atPath: images) }
    let nodes = NodeImages(
      catalogue: ImageCatalogue(directory: images), poolName: "p", consoleDirectory: images, machine: MachineSettings(kernel: "/vmlinuz"),
      hostPaths: HostPathPolicy(project: nil, allowed: ["/boot"]))
    #expect(nodes.bootFilesProblem(manifest(kernel: "/vmlinuz", initrd: images + "/boot-6.1-abc.cpio.gz")) == nil)
    #expect(nodes.bootFilesProblem(manifest(kernel: "/vmlinuz", initrd: "/etc/shadow"))?.contains("initrd") == true)
    #expect(nodes.bootFilesProblem(manifest(kernel: "/etc/shadow", initrd: images + "/boot-6.1-abc.cpio.gz"))?.contains("kernel") == true)
    #expect(nodes.bootFilesProblem(manifest(kernel: "/vmlinuz", initrd: images + "/../etc/boot-x.cpio.gz")) != nil)
  }
}
