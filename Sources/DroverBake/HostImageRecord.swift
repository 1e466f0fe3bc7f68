import DroverBasics
import DroverModel
import Foundation

/// What Drover writes beside an image it pushed to a host (`<artifact>.image.json`): the image's
/// manifest and the content-addressed volumes of its boot files, with their digests.
///
/// Why: a host's pool then describes itself. `drover images fetch` brings an image back to a
/// machine that never baked it (a throw-away CI runner), verified against these digests, and
/// `images gc --host` knows which kernel and initrd belong to which image. A record is a volume
/// anyone with access to the host can edit, so it is parsed strictly and every name it gives
/// must be a plain name of Drover's own kind; its digests are checked against what is fetched.
public struct HostImageRecord: Codable, Sendable, Hashable {
  public static let formatVersion = "1"
  /// Larger records are not read (a planted volume could be gigabytes).
  public static let maximumBytes: UInt64 = 1 << 20

  public struct BootFile: Codable, Sendable, Hashable {
    public var volume: String
    public var sha256: String

    public init(volume: String, sha256: String) {
      self.volume = volume
      self.sha256 = sha256
    }
  }

  public var formatVersion = HostImageRecord.formatVersion
  public var manifest: ImageManifest
  public var kernel: BootFile
  public var initrd: BootFile

  public init(manifest: ImageManifest, kernel: BootFile, initrd: BootFile) {
    self.manifest = manifest
    self.kernel = kernel
    self.initrd = initrd
  }

  /// The record's volume name in the host's pool.
  public var volume: String { PoolVolumeNames.imageRecord(of: manifest.artifact) }

  public func encoded() throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    return [UInt8](try encoder.encode(self))
  }

  /// A record read from a host, or why it is not one Drover wrote: its artifact, boot volumes
  /// and digests must be of the forms Drover writes, and it must sit under its own name.
  public static func decode(_ bytes: [UInt8], volume: String) -> Result<HostImageRecord, Diagnostic> {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    func refused(_ why: String) -> Result<HostImageRecord, Diagnostic> {
      .failure(.error("image.record", "the image record \(Terminal.escaped(volume)) on the host is refused: \(why)", subject: volume,
        hint: "push the image again from a machine that has it (drover images push), or delete the record"))
    }
    guard let record = try? decoder.decode(HostImageRecord.self, from: Data(bytes)) else { return refused("it is not a record Drover wrote") }
    guard record.formatVersion == formatVersion else { return refused("format \(Terminal.escaped(record.formatVersion)) is not \(formatVersion)") }
    let m = record.manifest
    guard ImageRef.isName(Substring(m.name)), ImageRef.isName(Substring(m.version)), !m.name.contains(".."),
      m.artifact == "\(m.name)-\(m.version)-\(m.key.prefix(12)).qcow2", ImageNames.isArtifact(m.artifact), record.volume == volume
    else {
      return refused("its artifact \(Terminal.escaped(m.artifact)) is not an image name of Drover's own under this record's name")
    }
    guard isDigest(m.artifactSHA256), isDigest(m.key), isDigest(record.kernel.sha256), isDigest(record.initrd.sha256) else {
      return refused("a digest is not 64 lowercase hex digits")
    }
    guard record.kernel.volume == PoolVolumeNames.bootFile(kind: "kernel", sha256: record.kernel.sha256),
      record.initrd.volume == PoolVolumeNames.bootFile(kind: "initrd", sha256: record.initrd.sha256)
    else { return refused("its boot volumes are not named by their digests") }
    return .success(record)
  }

  /// The host's image records that were verified when written (`.image.json` with its mark);
  /// records that cannot be read or are refused come back as warnings, never as images.
  public static func readAll(on host: any ImageHost, pool poolName: String) throws -> (records: [HostImageRecord], refused: [Diagnostic], volumes: Set<String>) {
    let names = Set(try host.volumeNames(pool: poolName))
    var records: [HostImageRecord] = [], refused: [Diagnostic] = []
    for name in names.sorted() where name.hasSuffix(".image.json") && names.contains(PoolVolumeNames.verifiedMark(of: name)) {
      guard let size = try host.volume(pool: poolName, name: name)?.bytes else { continue }
      guard size <= HostImageRecord.maximumBytes, let bytes = try host.read(pool: poolName, name: name, offset: 0) else {
        refused.append(.warning("image.record", "the image record \(Terminal.escaped(name)) on \(host.uri) is larger than a record Drover writes; ignored", subject: name))
        continue
      }
      switch HostImageRecord.decode(bytes, volume: name) {
      case .success(let r): records.append(r)
      case .failure(var d):
        d.severity = .warning
        d.message += "; ignored"
        refused.append(d)
      }
    }
    return (records, refused, names)
  }

  static func isDigest(_ s: String) -> Bool { s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) } }
}

/// The forms of Drover's own file names in an image folder or pool.
public enum ImageNames {
  /// `<name>-<version>-<12 hex>.qcow2` (not an overlay).
  public static func isArtifact(_ name: String) -> Bool {
    guard name.hasSuffix(".qcow2"), !name.hasPrefix("node-"), !name.hasPrefix("drover."), !name.contains("/") else { return false }
    let stem = name.dropLast(".qcow2".count)
    guard let dash = stem.lastIndex(of: "-") else { return false }
    let key = stem[stem.index(after: dash)...]
    return key.count == 12 && key.allSatisfy { $0.isHexDigit && !$0.isUppercase }
  }

  /// An image's own initrd in the image folder (a Debian image's, from its `/boot`):
  /// `boot-image-<12 hex>.img`.
  public static func imageInitrd(sha256: String) -> String { "boot-image-\(sha256.prefix(12)).img" }
  public static func isImageInitrd(_ name: String) -> Bool { isNamed(name, "boot-image-", ".img") }

  /// An initrd fetched from a host with its image: `boot-fetched-<12 hex>.cpio.gz`.
  public static func fetchedInitrd(sha256: String) -> String { "boot-fetched-\(sha256.prefix(12)).cpio.gz" }
  public static func isFetchedInitrd(_ name: String) -> Bool { isNamed(name, "boot-fetched-", ".cpio.gz") }

  /// A kernel fetched from a host into the image folder, or an image's own: `kernel-<12 hex>`
  /// (`PoolVolumeNames.bootFile`, the name it has in a host's pool too).
  public static func isFetchedKernel(_ name: String) -> Bool { isNamed(name, "kernel-", "") }

  /// `<prefix><12 lowercase hex><suffix>`.
  static func isNamed(_ name: String, _ prefix: String, _ suffix: String) -> Bool {
    guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.utf8.count == prefix.utf8.count + 12 + suffix.utf8.count else { return false }
    return name.dropFirst(prefix.count).dropLast(suffix.count).allSatisfy { $0.isHexDigit && !$0.isUppercase }
  }
}
