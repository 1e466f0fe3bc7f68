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

  public var reference: String { "\(name)@\(version)" }
  public var shortKey: String { String(key.prefix(12)) }
}
