import DroverModel
import Testing

/// #39: small parses on the plan's per-node path moved from Character splitting to bytes. Each
/// must answer exactly what the earlier `split`-based one did, kept here as the reference.
@Suite struct ByteParsingEquivalenceTests {
  static let paths = [
    "", "/", "//", "pool/vol", "/pool/vol", "//pool//vol", "pool", "pool/", "pool/a/b", "drover-images/drover.p.web-1.g1.qcow2",
    "/var/lib/drover/images/x.qcow2", "pööl/vol", "p\u{301}/v", " /x", "x/ ", "é/",
  ]

  @Test(arguments: paths)
  func diskPoolIsTheFirstPartOfThePath(disk: String) {
    var o = NodeOwnership(
      pool: "p", node: "p-1", index: 1, image: "i@v1", digest: "", specHash: "", generation: 1, vcpu: 1, memoryMiB: 1, diskMiB: 1, network: nil,
      labels: [:], protect: false)
    o.disk = disk
    #expect(o.diskPool == (disk.split(separator: "/").first.map(String.init) ?? ""))
  }

  /// Where the two differ, the bytes are right: a path is bytes to libvirt, and a slash before a
  /// combining mark is still a separator (Character splitting saw one grapheme "/́").
  @Test func aSlashBeforeACombiningMarkStillSeparates() {
    var o = NodeOwnership(
      pool: "p", node: "p-1", index: 1, image: "i@v1", digest: "", specHash: "", generation: 1, vcpu: 1, memoryMiB: 1, diskMiB: 1, network: nil,
      labels: [:], protect: false)
    o.disk = "a/\u{301}b"
    #expect(o.diskPool == "a")
  }
}
