import DroverBasics
import DroverSpec
import Foundation
import Testing

/// Every YAML test-suite file fed to the spec loader as a pool and as a recipe answers with a
/// result or located diagnostics: never a crash, a hang or a sourceless error.
@Suite struct CorpusThroughSpecLoaderTests {
  static let corpus = Fixtures.repoRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/yaml-test-suite")

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
