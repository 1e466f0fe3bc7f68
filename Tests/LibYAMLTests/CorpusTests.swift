import LibYAML
import Testing

/// Every file of the YAML test suite, read by the YAML layer: valid files parse, invalid files are
/// rejected with a position, and libyaml's (YAML 1.1) disagreements are listed in
/// `KnownDeviations` with a reason. Nothing crashes or hangs.
@Suite(.enabled(if: Corpus.isPresent, Corpus.skipReason)) struct CorpusTests {
  @Test func corpusIsPresent() {
    #expect(Corpus.files(suffix: ".valid.yaml").count > 300, "shared/corpus/yaml-test-suite must be beside the repo")
    #expect(Corpus.files(suffix: ".invalid.yaml").count > 90)
  }

  @Test(arguments: Corpus.files(suffix: ".valid.yaml"))
  func validFileParses(_ name: String) throws {
    let bytes = try Corpus.bytes(name)
    let id = String(name.dropLast(".valid.yaml".count))
    do {
      _ = try YAMLParser.parseDocuments(bytes)
      #expect(KnownDeviations.validRejected[id] == nil, "\(id) now parses: remove it from KnownDeviations")
    } catch {
      #expect(KnownDeviations.validRejected[id] != nil, "\(id) rejected: \(error.message) at \(String(describing: error.mark))")
      #expect(error.mark != nil, "a rejection has a position")
    }
  }

  @Test(arguments: Corpus.files(suffix: ".invalid.yaml"))
  func invalidFileIsRejectedWithPosition(_ name: String) throws {
    let bytes = try Corpus.bytes(name)
    let id = String(name.dropLast(".invalid.yaml".count))
    do {
      _ = try YAMLParser.parseDocuments(bytes)
      #expect(KnownDeviations.invalidAccepted[id] != nil, "\(id) was accepted by libyaml but is not a known deviation")
    } catch {
      #expect(KnownDeviations.invalidAccepted[id] == nil, "\(id) is now rejected: remove it from KnownDeviations")
      let mark = try #require(error.mark)
      #expect(mark.line >= 1 && mark.column >= 1)
      #expect(!error.message.isEmpty)
    }
  }
}
