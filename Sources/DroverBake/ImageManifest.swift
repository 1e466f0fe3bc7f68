import DroverModel
import Foundation

/// What a baked image is made of, written beside it as `<image>.manifest.json`.
///
/// The manifest's presence marks a complete image: it is written only after the artifact is in
/// place, so a bake interrupted at any point leaves no image that looks finished.
public struct ImageManifest: Codable, Sendable, Hashable {
  public static let formatVersion = "1"

  public var formatVersion = ImageManifest.formatVersion
  public var name: String
  public var version: String
  /// The cache key: a digest of every input. This is the image's identity (`name@sha256:<key>`).
  public var key: String
  public var recipe: ImageRecipe
  /// Every input file and its sha256.
  public var inputs: [String: String]
  public var tools: [String: String]
  /// The qcow2 file name in the image folder and its sha256.
  public var artifact: String
  public var artifactSHA256: String
  public var sizeBytes: UInt64
  public var kernel: String
  public var initrd: String
  public var cmdline: String
  public var buildLog: String
  public var created: Date
  /// Seconds per build step, in order.
  public var timings: [String: Double]
  /// The digests of `kernel` and `initrd` when the image brought its own (a Debian image's
  /// `/boot`): checked before a node boots them. Nil for the machine's kernel and Drover's
  /// initramfs, which are the machine's own files.
  public var kernelSHA256: String?
  public var initrdSHA256: String?
  /// The packages installed in the image (a Debian image's dpkg status), by name.
  public var packages: [InstalledPackage]?

  public init(
    name: String, version: String, key: String, recipe: ImageRecipe, inputs: [String: String], tools: [String: String],
    artifact: String, artifactSHA256: String, sizeBytes: UInt64, kernel: String, initrd: String, cmdline: String,
    buildLog: String, created: Date, timings: [String: Double]
  ) {
    self.name = name
    self.version = version
    self.key = key
    self.recipe = recipe
    self.inputs = inputs
    self.tools = tools
    self.artifact = artifact
    self.artifactSHA256 = artifactSHA256
    self.sizeBytes = sizeBytes
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.buildLog = buildLog
    self.created = created
    self.timings = timings
  }

  public var reference: String { "\(name)@\(version)" }

  /// One installed package: what `dpkg-query -W` shows.
  public struct InstalledPackage: Codable, Sendable, Hashable {
    public var name: String
    public var version: String
    public init(name: String, version: String) {
      self.name = name
      self.version = version
    }
  }
  public var shortKey: String { String(key.prefix(12)) }
}

extension ImageManifest {
  /// Whether the artifact is a plain file name in `directory` and the build log (if any) a file
  /// inside it: nothing a manifest names may point elsewhere.
  public func pathsStayInside(_ directory: String) -> Bool {
    func plain(_ name: Substring) -> Bool {
      !name.isEmpty && name.first != "." && name.utf8.count <= 255
        && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-@+".unicodeScalars.contains($0) }
    }
    guard plain(Substring(artifact)) else { return false }
    if buildLog.isEmpty { return true }
    guard !buildLog.split(separator: "/").contains("..") else { return false }
    let folder = (directory as NSString).standardizingPath
    let log = (buildLog as NSString).standardizingPath
    guard log.hasPrefix(folder + "/") else { return false }
    return log.dropFirst(folder.count + 1).split(separator: "/", omittingEmptySubsequences: false).allSatisfy(plain)
  }
}

extension ImageManifest {
  /// Writes `<image>.sha256` and then `<image>.manifest.json` beside the artifact already in
  /// `directory`: the manifest last, since its presence is what marks the image complete.
  public func writeBesideArtifact(in directory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    let base = directory + "/" + (artifact as NSString).deletingPathExtension
    try "\(artifactSHA256)  \(artifact)\n".write(toFile: base + ".sha256", atomically: true, encoding: .utf8)
    try encoder.encode(self).write(to: URL(fileURLWithPath: base + ".manifest.json"), options: .atomic)
  }
}
