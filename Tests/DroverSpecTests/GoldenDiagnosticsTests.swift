import DroverCommands
import DroverSpec
import Foundation
import Testing

/// Each `Fixtures/specs/invalid/<case>` renders exactly `<case>.expected`.
///
/// Regenerate after an intended message change with `DROVER_UPDATE_GOLDEN=1 swift test`.
@Suite struct GoldenDiagnosticsTests {
  static let invalid = Fixtures.specs.appendingPathComponent("invalid")

  static var cases: [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: invalid.path)) ?? []
    return names.filter { !$0.hasSuffix(".expected") }.map { $0.replacingOccurrences(of: ".yaml", with: "") }.sorted()
  }

  @Test func everyCaseIsCovered() {
    #expect(Self.cases.count >= 15)
  }

  @Test(arguments: cases)
  func rendersExactly(_ name: String) throws {
    var sources = [try Fixtures.source(Fixtures.specs.appendingPathComponent("images/demo.yaml"), display: "images/demo.yaml", kind: .recipe)]
    let folder = Self.invalid.appendingPathComponent(name)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue {
      for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() {
        sources.append(try Fixtures.source(folder.appendingPathComponent(file), display: "invalid/\(name)/\(file)"))
      }
    } else {
      sources.append(try Fixtures.source(Self.invalid.appendingPathComponent(name + ".yaml"), display: "invalid/\(name).yaml"))
    }
    let (_, diagnostics) = SpecLoader.load(sources)
    #expect(diagnostics.hasErrors, "an invalid fixture must give at least one error")
    #expect(diagnostics.allSatisfy { $0.location != nil }, "every spec diagnostic has a location")
    let text = Report.humanText(diagnostics, sources: sources, color: false) + "\n"
    let expectedURL = Self.invalid.appendingPathComponent(name + ".expected")
    if Fixtures.updateGolden {
      try text.write(to: expectedURL, atomically: true, encoding: .utf8)
    }
    let expected = try String(contentsOf: expectedURL, encoding: .utf8)
    #expect(text == expected)
  }
}
