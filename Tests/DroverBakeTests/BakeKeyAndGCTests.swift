import DroverBake
import DroverModel
import Foundation
import Testing

/// Pure parts of baking: the cache key and what garbage collection keeps.
@Suite struct BakeKeyAndGCTests {
  static func scratch() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-key-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
  }

  static func recipe(_ version: String = "v1") -> ImageRecipe {
    ImageRecipe(
      name: "demo", version: version, base: .rootfs("busybox"),
      files: [ImageRecipe.File(source: "init", path: "/init", mode: 0o755)], kernel: "/vmlinuz")
  }

  @Test func sameInputsSameKeyAndAnyInputChangesIt() throws {
    let dir = try Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "#!/bin/sh\necho hi\n".write(toFile: dir + "/init", atomically: true, encoding: .utf8)
    let digests = FileDigestCache(stateDirectory: dir + "/state")
    let tools = ["qemu-img": "9.0"]
    let a = try BakeKey.compute(recipe: Self.recipe(), recipeDirectory: dir, baseKey: nil, tools: tools, digests: digests)
    let b = try BakeKey.compute(recipe: Self.recipe(), recipeDirectory: dir, baseKey: nil, tools: tools, digests: digests)
    #expect(a.key == b.key)
    #expect(a.inputs.keys.sorted() == ["boot-init", "busybox", "file:init", "kernel"])

    #expect(try BakeKey.compute(recipe: Self.recipe("v2"), recipeDirectory: dir, baseKey: nil, tools: tools, digests: digests).key != a.key)
    #expect(try BakeKey.compute(recipe: Self.recipe(), recipeDirectory: dir, baseKey: nil, tools: ["qemu-img": "9.1"], digests: digests).key != a.key)
    Thread.sleep(forTimeInterval: 0.01)
    try "#!/bin/sh\necho bye\n".write(toFile: dir + "/init", atomically: true, encoding: .utf8)
    #expect(try BakeKey.compute(recipe: Self.recipe(), recipeDirectory: dir, baseKey: nil, tools: tools, digests: digests).key != a.key)
  }

  /// A recipe without `kernel` boots the machine's: another kernel there is another image.
  @Test func theMachinesKernelIsAnInputOfRecipesThatNameNone() throws {
    let dir = try Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "#!/bin/sh\n".write(toFile: dir + "/init", atomically: true, encoding: .utf8)
    try "kernel one".write(toFile: dir + "/k1", atomically: true, encoding: .utf8)
    try "kernel two".write(toFile: dir + "/k2", atomically: true, encoding: .utf8)
    var recipe = Self.recipe()
    recipe.kernel = nil
    let digests = FileDigestCache(stateDirectory: dir + "/state")
    let one = try BakeKey.compute(recipe: recipe, recipeDirectory: dir, baseKey: nil, tools: [:], digests: digests, machineKernel: dir + "/k1")
    let two = try BakeKey.compute(recipe: recipe, recipeDirectory: dir, baseKey: nil, tools: [:], digests: digests, machineKernel: dir + "/k2")
    #expect(one.key != two.key && one.inputs["kernel-path"] == dir + "/k1")
  }

  @Test func missingInputIsALocatedError() throws {
    let dir = try Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(throws: (any Error).self) {
      try BakeKey.compute(recipe: Self.recipe(), recipeDirectory: dir, baseKey: nil, tools: [:], digests: FileDigestCache(stateDirectory: dir))
    }
  }

  static func manifest(_ version: String, key: String, created: TimeInterval) -> ImageManifest {
    ImageManifest(
      name: "demo", version: version, key: key, recipe: recipe(version), inputs: [:], tools: [:], artifact: "demo-\(version)-\(key).qcow2",
      artifactSHA256: "x", sizeBytes: 1, kernel: "/vmlinuz", initrd: "i", cmdline: "c", buildLog: "", created: Date(timeIntervalSince1970: created),
      timings: [:])
  }

  @Test func gcKeepsCurrentPreviousInUseAndBackingImages() throws {
    let dir = try Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    let all = [
      Self.manifest("v1", key: "k1", created: 1), Self.manifest("v2", key: "k2", created: 2), Self.manifest("v3", key: "k3", created: 3),
      Self.manifest("v4", key: "k4", created: 4), Self.manifest("v5", key: "k5", created: 5),
    ]
    for m in all { try encoder.encode(m).write(to: URL(fileURLWithPath: "\(dir)/\(m.name)-\(m.version).manifest.json")) }
    let catalogue = ImageCatalogue(directory: dir)
    #expect(catalogue.manifests.count == 5)
    let pool = PoolSpec(name: "web", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v4")!)
    let keep = ImageGC.keep(catalogue: catalogue, pools: [pool], inUse: ["k1"], overlayBackings: ["demo-v2-k2.qcow2"])
    #expect(keep == ["k4", "k3", "k1", "k2"], "current v4, previous v3, v1 used by a node, v2 backing an overlay; v5 goes")
  }

  /// #18: boot files an image brought (or a fetch added) go once no image left names them; the
  /// shared initramfs and anything not named like Drover's never do.
  @Test func unusedImageBootFilesAreCollected() {
    func manifest(_ kernel: String, _ initrd: String) -> ImageManifest {
      ImageManifest(
        name: "deb", version: "v1", key: "k", recipe: ImageRecipe(name: "deb", version: "v1", base: .rootfs("busybox")), inputs: [:], tools: [:],
        artifact: "deb-v1-aaaaaaaaaaaa.qcow2", artifactSHA256: "", sizeBytes: 0, kernel: kernel, initrd: initrd, cmdline: "",
        buildLog: "", created: Date(), timings: [:])
    }
    let names = [
      "kernel-111111111111", "kernel-222222222222", "boot-image-333333333333.img", "boot-image-444444444444.img",
      "boot-fetched-555555555555.cpio.gz", "boot-6.1.0-28-amd64-666666666666.cpio.gz", "kernel-notmine", "notes.txt",
    ]
    let kept = [manifest("/img/kernel-111111111111", "/img/boot-image-333333333333.img")]
    #expect(ImageGC.unusedBootFiles(names: names, remaining: kept) == [
      "boot-fetched-555555555555.cpio.gz", "boot-image-444444444444.img", "kernel-222222222222",
    ])
  }
}
