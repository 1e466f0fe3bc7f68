import Foundation
import Testing

/// Layers, one direction: CLI → engine → spec + libvirt adapter → thin wrappers → C targets.
///
/// SwiftPM does not flag a target importing a module it only reaches transitively, so this test
/// reads every `import` in `Sources/` and compares it with the allowed edges.
@Suite struct ImportBoundaryTests {
  static let system: Set<String> = ["Foundation", "Glibc", "Dispatch", "Synchronization"]

  /// Module → the project modules and packages it may import (besides `system`).
  static let allowed: [String: Set<String>] = [
    "drover": ["DroverCommands"],
    "drover-bench": [
      "DroverCommands", "DroverBake", "DroverEngine", "DroverPostgres", "DroverRollout", "DroverSpec", "DroverPlan", "DroverLibvirt", "DroverModel",
      "DroverBasics", "Libvirt",
    ],
    "DroverCommands": [
      "DroverEngine", "DroverBake", "DroverPlan", "DroverRollout", "DroverSpec", "DroverLibvirt", "DroverPostgres", "DroverModel",
      "DroverBasics", "ArgumentParser",
    ],
    "DroverPostgres": ["DroverEngine", "DroverRollout", "DroverBasics", "PostgresNIO"],
    "DroverEngine": ["DroverPlan", "DroverRollout", "DroverModel", "DroverBasics"],
    "DroverBake": ["DroverModel", "DroverBasics"],
    "DroverPlan": ["DroverRollout", "DroverModel", "DroverBasics"],
    "DroverRollout": ["DroverModel", "DroverBasics"],
    "DroverLibvirt": ["Libvirt", "DroverModel", "DroverBasics"],
    "DroverSpec": ["LibYAML", "DroverModel", "DroverBasics"],
    "DroverModel": ["DroverBasics"],
    "DroverBasics": ["Crypto"],
    "Libvirt": ["CLibvirt"],
    "LibYAML": ["CYAML"],
  ]

  static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Sources")

  /// (module, file, imported module, the import line) for every import in Sources/.
  static func imports() throws -> [(module: String, file: String, imported: String, line: String)] {
    var result: [(String, String, String, String)] = []
    let fm = FileManager.default
    for module in try fm.contentsOfDirectory(atPath: sources.path).sorted() {
      let dir = sources.appendingPathComponent(module)
      guard let walker = fm.enumerator(atPath: dir.path) else { continue }
      for case let file as String in walker where file.hasSuffix(".swift") {
        let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
        for line in text.split(separator: "\n") {
          let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
          guard let i = words.firstIndex(of: "import"), i + 1 < words.count,
            words[..<i].allSatisfy({ ["internal", "private", "fileprivate", "public", "package", "@testable", "@_exported"].contains($0) })
          else { continue }
          let name = words[i + 1].split(separator: ".").first.map(String.init) ?? ""
          result.append((module, file, name, String(line)))
        }
      }
    }
    return result
  }

  @Test func everyImportFollowsTheLayering() throws {
    let all = try Self.imports()
    #expect(all.count > 20, "the scan found the sources")
    for entry in all where !Self.system.contains(entry.imported) {
      let allowed = try #require(Self.allowed[entry.module], "module \(entry.module) has no row in the allow-list")
      #expect(allowed.contains(entry.imported), "\(entry.module)/\(entry.file) imports \(entry.imported)")
    }
  }

  @Test func cModulesAreImportedInternallyByTheirWrapperOnly() throws {
    for entry in try Self.imports() where entry.imported.hasPrefix("C") && entry.imported != "Crypto" {
      #expect(["Libvirt", "LibYAML"].contains(entry.module), "\(entry.module) imports \(entry.imported)")
      #expect(entry.line.hasPrefix("internal import"), "\(entry.file): C must not leak into public API: \(entry.line)")
    }
  }

  @Test func theCheckCatchesAnUpwardImport() {
    #expect(Self.allowed["DroverModel"]?.contains("DroverSpec") == false)
    #expect(Self.allowed["Libvirt"]?.contains("DroverModel") == false)
    #expect(Self.allowed["DroverSpec"]?.contains("Libvirt") == false)
  }
}
