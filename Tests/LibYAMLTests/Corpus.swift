import Foundation
import Testing

/// The public YAML test suite: `$DROVER_YAML_CORPUS`, else `../shared/corpus/yaml-test-suite`
/// beside the repository. A clone elsewhere has neither: the corpus tests are then skipped,
/// with this reason, rather than failed.
enum Corpus {
  static var isPresent: Bool { files(suffix: ".yaml").count > 0 }
  static var skipReason: Comment {
    "the YAML test suite is not at \(directory.path): set DROVER_YAML_CORPUS to its folder (yaml-test-suite) to run these tests"
  }

  static let directory: URL = {
    if let override = ProcessInfo.processInfo.environment["DROVER_YAML_CORPUS"] {
      return URL(fileURLWithPath: override)
    }
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    return repo.deletingLastPathComponent().appendingPathComponent("shared/corpus/yaml-test-suite")
  }()

  static func files(suffix: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.filter { $0.hasSuffix(suffix) }.sorted()
  }

  static func bytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
  }
}
