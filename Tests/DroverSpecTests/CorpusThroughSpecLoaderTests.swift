import DroverBasics
import DroverSpec
import Foundation
import Testing

/// Every YAML test-suite file fed to the spec loader as a pool and as a recipe answers with a
/// result or located diagnostics: never a crash, a hang or a sourceless error.
/// Where the YAML test suite is: `$DROVER_YAML_CORPUS`, else `../shared/corpus/yaml-test-suite`
/// beside the repository; without it the test is skipped with the reason.
enum SpecCorpus {
  static let corpus = ProcessInfo.processInfo.environment["DROVER_YAML_CORPUS"].map { URL(fileURLWithPath: $0) }
    ?? Fixtures.repoRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/yaml-test-suite")
  static var isPresent: Bool { ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).contains { $0.hasSuffix(".yaml") } }
  static var skipReason: Comment {
    "the YAML test suite is not at \(corpus.path): set DROVER_YAML_CORPUS to its folder (yaml-test-suite) to run this test"
  }
}

@Suite(.enabled(if: SpecCorpus.isPresent, SpecCorpus.skipReason))
struct CorpusThroughSpecLoaderTests {
  static let corpus = SpecCorpus.corpus

  @Test func everyCorpusFileGetsAResultOrLocatedDiagnostics() throws {
    let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { $0.hasSuffix(".yaml") }
    #expect(names.count > 400)
    for name in names {
      let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent(name)))
      for kind in [SpecKind.pool, .recipe] {
        let (set, diagnostics) = SpecLoader.load([SpecSource(path: name, kind: kind, bytes: bytes)])
        let produced = set.pools.count + set.recipes.count
        #expect(produced > 0 || diagnostics.hasErrors, "\(name): neither a result nor an error")
        #expect(diagnostics.allSatisfy { $0.location?.file == name && $0.location!.start.line >= 1 }, "\(name)")
      }
    }
  }
}
