import Foundation
import Testing

/// Layers, one direction: CLI → engine → spec + libvirt adapter → thin wrappers → C targets.
///
/// SwiftPM does not flag a target importing a module it only reaches transitively, so this test
/// reads every `import` in `Sources/` — in every form: `@preconcurrency`, `@_implementationOnly`,
/// access levels, `import struct M.T` — and compares it with the dependencies each target declares
/// in Package.swift itself (read from its text: no copy of the graph here). The layering is a rank
/// per module; every declared edge must point down.
@Suite struct ImportBoundaryTests {
  static let system: Set<String> = ["Foundation", "Glibc", "Dispatch", "Synchronization", "PackageDescription"]

  /// How high each module sits: a module may depend only on modules ranked lower.
  static let rank: [String: Int] = [
    "CLibvirt": 0, "CYAML": 0, "Crypto": 0, "PostgresNIO": 0, "ArgumentParser": 0, "NIOCore": 0, "NIOPosix": 0, "NIOHTTP1": 0, "NIOSSL": 0,
    "Libvirt": 1, "LibYAML": 1, "DroverBasics": 1,
    "DroverModel": 2,
    "DroverRollout": 3, "DroverSpec": 3, "DroverLibvirt": 3, "DroverBake": 3,
    "DroverPlan": 4,
    "DroverEngine": 5,
    "DroverPostgres": 6, "DroverPrometheus": 6,
    "DroverCommands": 7,
    "drover": 8, "drover-bench": 8,
  ]

  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let sources = root.appendingPathComponent("Sources")

  /// The module an import line imports, whatever its attributes, access level or kind; nil when
  /// the line is not an import.
  static func importedModule(of line: String) -> String? {
    var words = line.trimmingCharacters(in: .whitespaces).split(whereSeparator: \.isWhitespace).map(String.init)
    // Attributes (`@preconcurrency`, `@_implementationOnly`, `@_spi(X)`, `@testable`, …) and access levels.
    while let first = words.first, first.hasPrefix("@") || ["public", "internal", "private", "fileprivate", "package", "open"].contains(first) {
      words.removeFirst()
    }
    guard words.first == "import", words.count >= 2 else { return nil }
    var name = words[1]
    if ["typealias", "struct", "class", "enum", "protocol", "let", "var", "func"].contains(name), words.count >= 3 { name = words[2] }
    let module = name.split(separator: ".").first.map(String.init) ?? ""
    return module.first.map { $0.isLetter || $0 == "_" } == true ? module : nil
  }

  /// (module, file, imported module, the line) for every import in `Sources/`.
  static func imports() throws -> [(module: String, file: String, imported: String, line: String)] {
    var result: [(String, String, String, String)] = []
    let fm = FileManager.default
    for module in try fm.contentsOfDirectory(atPath: sources.path).sorted() {
      let dir = sources.appendingPathComponent(module)
      guard let walker = fm.enumerator(atPath: dir.path) else { continue }
      for case let file as String in walker where file.hasSuffix(".swift") {
        let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
        for line in text.split(separator: "\n") {
          if let imported = importedModule(of: String(line)) { result.append((module, file, imported, String(line))) }
        }
      }
    }
    return result
  }

  /// Each target of a manifest and the modules it declares as dependencies: names in quotes,
  /// `.product(name: …)`, and `let` constants bound to a product.
  static func declaredDependencies(manifest text: String) -> [String: Set<String>] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
      line.range(of: "//").map { line[..<$0.lowerBound] } ?? line[...]
    }
    let code = lines.joined(separator: "\n")
    func matches(_ pattern: String, in s: String) -> [[String]] {
      guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
      let ns = s as NSString
      return regex.matches(in: s, range: NSRange(location: 0, length: ns.length)).map { m in
        (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
      }
    }
    var aliases: [String: String] = [:]
    for m in matches(#"let\s+(\w+)\s*=\s*Target\.Dependency\.product\(\s*name:\s*"([^"]+)""#, in: code) { aliases[m[1]] = m[2] }
    var result: [String: Set<String>] = [:]
    let starts = matches(#"\.(?:target|executableTarget|testTarget|systemLibrary|plugin)\(\s*name:\s*"([^"]+)""#, in: code)
    let ns = code as NSString
    var cursor = 0
    for (i, start) in starts.enumerated() {
      let here = ns.range(of: start[0], range: NSRange(location: cursor, length: ns.length - cursor))
      cursor = here.location + here.length
      let next = i + 1 < starts.count ? ns.range(of: starts[i + 1][0], range: NSRange(location: cursor, length: ns.length - cursor)).location : ns.length
      var body = ns.substring(with: NSRange(location: cursor, length: next - cursor))
      var declared: Set<String> = []
      if let open = body.range(of: "dependencies:") {
        body = String(body[open.upperBound...])
        if let bracket = body.firstIndex(of: "[") {
          var depth = 0
          var end = bracket
          for index in body[bracket...].indices {
            if body[index] == "[" { depth += 1 }
            if body[index] == "]" { depth -= 1 }
            if depth == 0 {
              end = index
              break
            }
          }
          var list = String(body[body.index(after: bracket)..<end])
          for m in matches(#"\.product\(\s*name:\s*"([^"]+)"[^)]*\)"#, in: list) {
            declared.insert(m[1])
            list = list.replacingOccurrences(of: m[0], with: "")
          }
          for m in matches(#""([^"]+)""#, in: list) { declared.insert(m[1]) }
          for m in matches(#"\b([A-Za-z_]\w*)\b"#, in: list) { if let product = aliases[m[1]] { declared.insert(product) } }
        }
      }
      result[start[1]] = declared
    }
    return result
  }

  /// What breaks the rules: an import of a module the target does not declare (SwiftPM builds it
  /// anyway when it is reached transitively), and a declared edge that points up.
  static func violations(imports: [(module: String, file: String, imported: String)], declared: [String: Set<String>]) -> [String] {
    var found: [String] = []
    for entry in imports where !system.contains(entry.imported) && entry.imported != entry.module {
      guard let deps = declared[entry.module] else {
        found.append("\(entry.module) is not a target of Package.swift")
        continue
      }
      if !deps.contains(entry.imported) { found.append("\(entry.module)/\(entry.file) imports \(entry.imported), which Package.swift does not declare for it") }
    }
    for (module, deps) in declared where rank[module] != nil {
      for dep in deps.sorted() {
        guard let low = rank[dep], let high = rank[module] else {
          found.append("\(module) depends on \(dep), which has no rank")
          continue
        }
        if low >= high { found.append("\(module) (rank \(high)) depends on \(dep) (rank \(low)): an upward or sideways edge") }
      }
    }
    return found.sorted()
  }

  static func manifest() throws -> [String: Set<String>] {
    try declaredDependencies(manifest: String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8))
  }

  @Test func everyImportIsDeclaredAndEveryEdgePointsDown() throws {
    let all = try Self.imports()
    let declared = try Self.manifest()
    #expect(all.count > 20, "the scan found the sources")
    #expect(declared["DroverCommands"]?.contains("ArgumentParser") == true && declared["DroverPostgres"]?.contains("PostgresNIO") == true, "the manifest was read: \(declared)")
    for module in try FileManager.default.contentsOfDirectory(atPath: Self.sources.path) {
      #expect(declared[module] != nil && Self.rank[module] != nil, "Sources/\(module) is a target of Package.swift with a rank")
    }
    let problems = Self.violations(imports: all.map { ($0.module, $0.file, $0.imported) }, declared: declared)
    #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
  }

  @Test func cModulesAreImportedInternallyByTheirWrapperOnly() throws {
    for entry in try Self.imports() where entry.imported.hasPrefix("C") && entry.imported != "Crypto" {
      #expect(["Libvirt", "LibYAML"].contains(entry.module), "\(entry.module) imports \(entry.imported)")
      #expect(entry.line.hasPrefix("internal import"), "\(entry.file): C must not leak into public API: \(entry.line)")
    }
  }

  /// The checker itself: every import form is read, and a planted undeclared or upward import fails.
  @Test func theCheckCatchesPlantedImports() throws {
    #expect(Self.importedModule(of: "@preconcurrency import DroverCommands") == "DroverCommands")
    #expect(Self.importedModule(of: "  @_implementationOnly import Libvirt") == "Libvirt")
    #expect(Self.importedModule(of: "public import struct DroverSpec.PoolFile") == "DroverSpec")
    #expect(Self.importedModule(of: "@_spi(Internal) @preconcurrency internal import PostgresNIO") == "PostgresNIO")
    #expect(Self.importedModule(of: "let important = 1") == nil && Self.importedModule(of: "// import Foo") == nil)
    let declared = try Self.manifest()
    let undeclared = Self.violations(imports: [("DroverSpec", "Planted.swift", "Libvirt")], declared: declared)
    #expect(undeclared.contains { $0.contains("DroverSpec/Planted.swift imports Libvirt") }, "\(undeclared)")
    let upward = Self.violations(
      imports: [("DroverModel", "Planted.swift", Self.importedModule(of: "@preconcurrency import DroverCommands") ?? "")],
      declared: declared.merging(["DroverModel": (declared["DroverModel"] ?? []).union(["DroverCommands"])]) { $1 })
    #expect(upward.contains { $0.contains("DroverModel (rank 2) depends on DroverCommands (rank 7)") }, "\(upward)")
    // A manifest naming a dependency through a `let` constant and `.product` is read.
    let sample = """
      let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
      .target(name: "A", dependencies: ["B", crypto, .product(name: "PostgresNIO", package: "postgres-nio")]), // "C"
      .target(name: "B"),
      """
    #expect(Self.declaredDependencies(manifest: sample) == ["A": ["B", "Crypto", "PostgresNIO"], "B": []])
  }
}
