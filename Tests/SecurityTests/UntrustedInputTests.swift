import DroverBake
import DroverBasics
import DroverModel
import DroverSpec
import Foundation
import Testing

/// #16: what arrives in a pull request (pool files, recipes) can never reach beyond the project.
/// One test per attack; each failed before the check it names existed.
@Suite struct UntrustedInputTests {
  func load(_ path: String, _ yaml: String, kind: SpecKind) -> [Diagnostic] {
    SpecLoader.load([SpecSource(path: path, kind: kind, bytes: Array(yaml.utf8))]).1
  }

  func recipe(files: String) -> String {
    "name: evil\nversion: v1\nbase: {rootfs: busybox}\nfiles:\n\(files)"
  }

  /// `path: /../../host/dir` replaced a host folder with a setuid binary; `path: /a/../../x` overwrote a host file.
  @Test(arguments: ["/../../../../some/host/dir", "/etc/../../x", "etc/passwd", "/", "/etc//passwd", "/./init", "/etc/\u{1B}[2Jx"])
  func anImagePathThatEscapesOrIsNotNormalIsRefused(_ path: String) {
    let diagnostics = load("images/evil.yaml", recipe(files: "  - {source: files/init, path: \"\(path.unicodeScalars.map { $0.value < 0x20 ? String(format: "\\x%02X", $0.value) : String($0) }.joined())\", mode: \"4755\"}\n"), kind: .recipe)
    #expect(diagnostics.contains { $0.code == "spec.path.image" && $0.location?.start.line == 5 }, "\(path): \(diagnostics)")
    #expect(!diagnostics.contains { $0.message.contains("\u{1B}") }, "no raw escape reaches a diagnostic")
  }

  /// `source: ../../../../etc/shadow` copied the host's shadow file into an image.
  @Test(arguments: ["../../../../etc/shadow", "/etc/shadow", "files/../../secret", "~root/.ssh/id_rsa", "files//init"])
  func aSourceOutsideTheImagesFolderIsRefused(_ source: String) {
    let diagnostics = load("images/evil.yaml", recipe(files: "  - {source: \"\(source)\", path: /etc/x}\n"), kind: .recipe)
    #expect(diagnostics.contains { $0.code == "spec.path.source" }, "\(source): \(diagnostics)")
  }

  @Test func normalPathsPass() {
    let diagnostics = load("images/ok.yaml", recipe(files: "  - {source: files/init, path: /init, mode: \"0755\"}\n  - {source: motd, path: /etc/motd}\n"), kind: .recipe)
    #expect(!diagnostics.hasErrors, "\(diagnostics)")
  }

  /// `hosts: ["qemu+ext:///system?command=/path/evil.sh"]` made a read-only drift run the script.
  @Test(arguments: ["qemu+ext:///system?command=/tmp/evil.sh", "qemu+ssh://h/system?netcat=/tmp/nc", "qemu+tls://h/system?no_verify=1",
    "qemu+tls://h/system?pkipath=/tmp", "qemu+ssh://h/system?keyfile=/tmp/k", "qemu+libssh://h/system?known_hosts=/tmp/kh"])
  func aPoolFileNeverChoosesAProgramOrTrust(_ uri: String) {
    let diagnostics = load("pools/web.yaml", "name: web\nhosts: [\"\(uri)\"]\nreplicas: 1\nimage: demo@v1\n", kind: .pool)
    #expect(diagnostics.contains { $0.code == "spec.uri.unsafe" }, "\(uri): \(diagnostics)")
  }

  /// Control characters in labels reached terminals raw (escape injection).
  @Test func controlCharactersInLabelsAreRefusedAndNeverEchoedRaw() {
    let diagnostics = load("pools/web.yaml", "name: web\nhosts: [qemu:///system]\nreplicas: 1\nimage: demo@v1\nlabels: {team: \"a\\e[31mred\", \"k\\ey\": v}\n", kind: .pool)
    #expect(diagnostics.filter { $0.code == "spec.label" }.count == 2, "\(diagnostics)")
    #expect(!diagnostics.contains { $0.message.contains("\u{1B}") }, "\(diagnostics.map(\.message))")
  }

  /// A base image that brings `/etc -> /host/folder`: writing `/etc/x` must never follow it.
  @Test func aSymlinkInsideTheImageIsNeverWrittenThrough() throws {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-sec-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))").path
    let root = scratch + "/root", outside = scratch + "/outside"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    try FileManager.default.createSymbolicLink(atPath: root + "/etc", withDestinationPath: outside)
    #expect(throws: Diagnostic.self) { try ImageTree.prepareTarget(root: root, path: "/etc/shadow") }
    #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing written outside")
    // A symlink at the target itself is removed, not written through.
    try FileManager.default.createSymbolicLink(atPath: root + "/motd", withDestinationPath: outside + "/motd")
    let target = try ImageTree.prepareTarget(root: root, path: "/motd")
    #expect(target == root + "/motd" && !FileManager.default.fileExists(atPath: root + "/motd"))
    #expect(try ImageTree.prepareTarget(root: root, path: "/usr/local/bin/tool") == root + "/usr/local/bin/tool")
    #expect(throws: Diagnostic.self) { try ImageTree.prepareTarget(root: root, path: "/../x") }
  }
}

/// A manifest planted or edited in the image folder (`artifact: ../../x`) made `images gc` delete
/// files outside it: such a manifest is not an image at all.
@Suite struct PlantedManifestTests {
  @Test func aManifestWhosePathsLeaveTheImageFolderIsIgnoredAndNeverDeletes() throws {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-gc-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))").path
    let images = scratch + "/images", victim = scratch + "/victim.txt"
    try FileManager.default.createDirectory(atPath: images + "/logs", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    try "keep me".write(toFile: victim, atomically: true, encoding: .utf8)
    func manifest(artifact: String, log: String) -> ImageManifest {
      ImageManifest(
        name: "demo", version: "v1", key: String(repeating: "a", count: 64),
        recipe: ImageRecipe(name: "demo", version: "v1", base: .rootfs("busybox")), inputs: [:], tools: [:], artifact: artifact,
        artifactSHA256: "", sizeBytes: 0, kernel: "", initrd: "", cmdline: "", buildLog: log, created: Date(), timings: [:])
    }
    for (artifact, log) in [("../victim.txt", ""), ("demo.qcow2", victim), ("demo.qcow2", images + "/logs/../../victim.txt"), (".hidden", "")] {
      let m = manifest(artifact: artifact, log: log)
      #expect(!m.pathsStayInside(images), "\(artifact) \(log)")
      ImageGC.delete(m, in: images)
      #expect(FileManager.default.fileExists(atPath: victim), "nothing outside the image folder is deleted")
    }
    #expect(manifest(artifact: "demo-v1-abc.qcow2", log: images + "/logs/demo-v1-abc.log").pathsStayInside(images))
    #expect(manifest(artifact: "demo-v1-abc.qcow2", log: images + "/logs/demo-v1-abc.log").pathsStayInside(images + "/"))
  }
}
