import DroverBake
import DroverModel
import Foundation
import Testing

/// Pure parts of images on hosts: the record a push writes beside an image, and what
/// `images gc --host` deletes.
@Suite struct HostImagesTests {
  static func hex(_ c: Character) -> String { String(repeating: c, count: 64) }

  static func record(_ version: String, key: Character, created: TimeInterval, kernel: Character = "a", initrd: Character = "b") -> HostImageRecord {
    let k = hex(key)
    let m = ImageManifest(
      name: "demo", version: version, key: k, recipe: BakeKeyAndGCTests.recipe(version), inputs: [:], tools: [:],
      artifact: "demo-\(version)-\(k.prefix(12)).qcow2", artifactSHA256: hex("c"), sizeBytes: 1, kernel: "/vmlinuz",
      initrd: "/var/lib/drover/images/boot-x.cpio.gz", cmdline: "c", buildLog: "", created: Date(timeIntervalSince1970: created), timings: [:])
    return HostImageRecord(
      manifest: m, kernel: .init(volume: "kernel-" + hex(kernel).prefix(12), sha256: hex(kernel)),
      initrd: .init(volume: "initrd-" + hex(initrd).prefix(12), sha256: hex(initrd)))
  }

  @Test func aRecordRoundTripsUnderItsOwnName() throws {
    let r = Self.record("v1", key: "1", created: 1)
    #expect(r.volume == "demo-v1-111111111111.image.json")
    let back = try HostImageRecord.decode(try r.encoded(), volume: r.volume).get()
    #expect(back == r)
  }

  /// A record is a volume anyone with access to the host can edit: every name it gives must be
  /// of Drover's own form, so nothing fetched lands outside the image folder or under a
  /// name another file has.
  @Test(arguments: [
    "artifact leaves the folder", "artifact not its name", "name with a slash", "kernel volume not its digest",
    "initrd volume not its digest", "digest not hex", "another format",
  ])
  func aRecordDroverDidNotWriteIsRefused(_ why: String) throws {
    var r = Self.record("v1", key: "1", created: 1)
    switch why {
    case "artifact leaves the folder": r.manifest.artifact = "../../etc/demo-v1-111111111111.qcow2"
    case "artifact not its name": r.manifest.artifact = "other-v1-111111111111.qcow2"
    case "name with a slash": r.manifest.name = "a/b"
    case "kernel volume not its digest": r.kernel.volume = "kernel-../../x"
    case "initrd volume not its digest": r.initrd.volume = "initrd-bbbbbbbbbbbc"
    case "digest not hex": r.manifest.artifactSHA256 = "Z" + String(repeating: "c", count: 63)
    default: r.formatVersion = "2"
    }
    guard case .failure(let d) = HostImageRecord.decode(try r.encoded(), volume: "demo-v1-111111111111.image.json") else {
      Issue.record("accepted: \(why)")
      return
    }
    #expect(d.code == "image.record", "\(why)")
  }

  @Test func aRecordUnderAnotherNameOrNotJSONIsRefused() throws {
    let r = Self.record("v1", key: "1", created: 1)
    guard case .failure = HostImageRecord.decode(try r.encoded(), volume: "demo-v2-111111111111.image.json") else { Issue.record("accepted"); return }
    guard case .failure = HostImageRecord.decode(Array("{}".utf8), volume: r.volume) else { Issue.record("accepted"); return }
  }

  /// Table: current, previous, in use and overlay-backed images stay; the others go with their
  /// marks and records (record last); a kernel another kept image shares stays.
  @Test func hostGCDeletesWhatNoPoolNodeOrOverlayNeedsAndSharedBootFilesStay() {
    let v1 = Self.record("v1", key: "1", created: 1, kernel: "a", initrd: "e")
    let v2 = Self.record("v2", key: "2", created: 2)
    let v3 = Self.record("v3", key: "3", created: 3)
    let v4 = Self.record("v4", key: "4", created: 4)
    let v5 = Self.record("v5", key: "5", created: 5, kernel: "d", initrd: "b")
    let records = [v1, v2, v3, v4, v5]
    var volumes: Set<String> = []
    for r in records {
      for n in [r.manifest.artifact, r.volume, r.kernel.volume, r.initrd.volume] { volumes.formUnion([n, n + ".verified"]) }
    }
    volumes.insert("someone-else.qcow2")
    let pool = PoolSpec(name: "web", hosts: ["h2"], replicas: 1, image: ImageRef(parsing: "demo@v4")!)
    let decision = HostImageGC.decide(
      records: records, volumes: volumes, pools: [pool], inUse: [v2.manifest.key], overlayBackings: [v1.manifest.artifact])
    #expect(decision.images == ["demo@v5"], "v4 current, v3 previous, v2 in use, v1 backs an overlay")
    #expect(decision.volumes == [
      v5.manifest.artifact + ".verified", v5.manifest.artifact, "kernel-dddddddddddd.verified", "kernel-dddddddddddd",
      v5.volume + ".verified", v5.volume,
    ], "v5's initrd is v2's too: it stays; the record goes last")

    let nothing = HostImageGC.decide(records: records, volumes: volumes, pools: [pool], inUse: Set(records.map(\.manifest.key)), overlayBackings: [])
    #expect(nothing.volumes.isEmpty)
    let missing = HostImageGC.decide(records: [v5], volumes: [v5.volume], pools: [], inUse: [], overlayBackings: [])
    #expect(missing.volumes == [v5.volume], "what is already gone is skipped: a gc stopped midway is finished by the next")
  }
}
