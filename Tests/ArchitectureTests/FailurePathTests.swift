import Foundation
import Testing

/// #34: one failure path. Commands throw their failures (diagnostic values) to the error edge,
/// which renders them once; none renders a failure and then exits on its own, none prints a
/// free-text error line; the conversion from an error to diagnostics exists once; and every
/// code a diagnostic can carry is in the README's table with its meaning.
@Suite struct FailurePathTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// Every Swift file under Sources/ (the benchmark tool's own reporting aside), by path.
  static func sources() throws -> [(path: String, text: String)] {
    let base = root.appendingPathComponent("Sources").path
    let files = FileManager.default.enumerator(atPath: base)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") && !$0.hasPrefix("drover-bench/") } ?? []
    return try files.sorted().map { ($0, try String(contentsOfFile: base + "/" + $0, encoding: .utf8)) }
  }

  /// The codes the sources give diagnostics: `.error("code", …`, `.warning("code", …` (across
  /// lines) and `code: "code"`.
  static func codes(in text: String) -> Set<String> {
    var found: Set<String> = []
    for pattern in [#"\.(?:error|warning|note)\(\s*"([a-z][a-z0-9_.-]*)""#, #"\bcode: "([a-z][a-z0-9_.-]*)""#] {
      let regex = try! NSRegularExpression(pattern: pattern)
      for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
        if let range = Range(match.range(at: 1), in: text) { found.insert(String(text[range])) }
      }
    }
    return found
  }

  /// The codes of the README's table: rows `| `code` | meaning |` with a meaning.
  static func tableCodes(_ readme: String) -> [String: String] {
    var rows: [String: String] = [:]
    for line in readme.split(separator: "\n") where line.hasPrefix("| `") {
      let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      guard cells.count >= 3, cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { continue }
      rows[String(cells[1].dropFirst().dropLast())] = cells[2]
    }
    return rows
  }

  @Test func noCommandRendersAFailureAndExitsOnItsOwn() throws {
    var offenders: [String] = []
    for (path, text) in try Self.sources() {
      for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        if line.contains("throw ExitCode.failure") || line.contains("Output.err(\"error:") { offenders.append("\(path):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))") }
      }
    }
    #expect(offenders.isEmpty, "failures go to the error edge as diagnostics:\n\(offenders.joined(separator: "\n"))")
  }

  @Test func theConversionFromAnErrorToDiagnosticsExistsOnce() throws {
    var places: [String] = []
    for (path, text) in try Self.sources() where text.contains("as? DiagnosticConvertible") {
      places.append(path)
    }
    // The conversion itself, and the edge's unwrapping of what an option group threw.
    #expect(places.sorted() == ["DroverBasics/DiagnosticOfError.swift", "DroverCommands/ErrorEdge.swift"], "\(places)")
  }

  @Test func everyCodeIsInTheReadmeTableWithItsMeaning() throws {
    let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
    let table = Self.tableCodes(readme)
    var missing: [String] = []
    for (path, text) in try Self.sources() {
      for code in Self.codes(in: text).sorted() where (table[code] ?? "").isEmpty { missing.append("\(code) (\(path))") }
    }
    #expect(missing.isEmpty, "codes without a row in the README's table:\n\(missing.joined(separator: "\n"))")
    #expect(table.count > 100, "the table was found: \(table.count) rows")
  }

  /// The checkers find what they look for (a check that cannot fail proves nothing).
  @Test func theCheckersSeePlantedCases() {
    #expect(Self.codes(in: "throw Diagnostic.error(\n  \"plan.planted\", \"x\")\nlet d = Diagnostic(.warning, code: \"w.planted\", message: \"\")") == ["plan.planted", "w.planted"])
    #expect(Self.tableCodes("| Code | Meaning |\n| `a.b` | what a.b means |\n| `c.d` |  |\n") == ["a.b": "what a.b means", "c.d": ""])
  }
}
