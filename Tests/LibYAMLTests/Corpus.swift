import Foundation

/// The public YAML test suite shipped beside the repository in `shared/corpus/`.
enum Corpus {
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
