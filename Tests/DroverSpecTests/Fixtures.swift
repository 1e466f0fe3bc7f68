import DroverSpec
import Foundation

/// Paths of the checked-in fixtures, relative to this file (no bundle resources needed).
enum Fixtures {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures")
  static let repoRoot = root.deletingLastPathComponent().deletingLastPathComponent()
  static var specs: URL { root.appendingPathComponent("specs") }

  /// Reads a fixture file as a `SpecSource` whose path is `display` (stable in golden text).
  static func source(_ url: URL, display: String, kind: SpecKind = .pool) throws -> SpecSource {
    SpecSource(path: display, kind: kind, bytes: [UInt8](try Data(contentsOf: url)))
  }

  static var updateGolden: Bool { ProcessInfo.processInfo.environment["DROVER_UPDATE_GOLDEN"] == "1" }
}
