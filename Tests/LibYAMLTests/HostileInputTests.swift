import LibYAML
import Testing

@Suite struct HostileInputTests {
  @Test func billionLaughsIsRefusedQuickly() throws {
    var doc = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in 1...9 {
      doc += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    let error = #expect(throws: YAMLError.self) { try YAMLParser.parseDocuments(Array(doc.utf8)) }
    #expect(error?.message.contains("expands to more than") == true)
    #expect(error?.mark?.line ?? 0 >= 2)
  }

  @Test func aliasesWithinTheBoundAreExpanded() throws {
    let docs = try YAMLParser.parseDocuments(Array("a: &x [1, 2]\nb: *x\n".utf8))
    guard case .mapping(let pairs) = docs[0].content, case .sequence(let items) = pairs[1].value.content else {
      Issue.record("expected a mapping with a list")
      return
    }
    #expect(items.map(\.scalar) == ["1", "2"])
  }

  @Test func anUnclosedQuoteNamesWhereItOpened() {
    let error = #expect(throws: YAMLError.self) {
      try YAMLParser.parseDocuments(Array("name: \"web\nhosts: []\nreplicas: 1\n".utf8))
    }
    #expect(error?.message.contains("while scanning a quoted scalar that began at line 1, column 7") == true, "\(error?.message ?? "")")
    #expect(error?.mark?.line == 4, "and where parsing stopped")
  }

  @Test func unknownAliasIsAnError() {
    let error = #expect(throws: YAMLError.self) { try YAMLParser.parseDocuments(Array("a: *nope\n".utf8)) }
    #expect(error?.message.contains("no anchor") == true)
  }

  @Test func deepNestingIsBounded() {
    let doc = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
    let error = #expect(throws: YAMLError.self) { try YAMLParser.parseDocuments(Array(doc.utf8)) }
    #expect(error?.message.contains("nesting") == true)
  }

  @Test func nulByteHasAPosition() {
    let error = #expect(throws: YAMLError.self) { try YAMLParser.parseDocuments(Array("a: 1\nb: \u{0}\n".utf8)) }
    #expect(error?.mark == YAMLMark(line: 2, column: 4, offset: 8))
  }

  @Test func invalidUTF8HasAPosition() {
    let error = #expect(throws: YAMLError.self) { try YAMLParser.parseDocuments([0x61, 0x3A, 0x20, 0xC3, 0x28]) }
    #expect(error?.message == "file is not valid UTF-8")
    #expect(error?.mark?.column == 4)
  }

  @Test func oversizedInputIsRefusedBeforeParsing() {
    let big = [UInt8](repeating: UInt8(ascii: "a"), count: 100 << 20)
    let error = #expect(throws: YAMLError.self) {
      try YAMLParser.parseDocuments(big, limits: YAMLLimits(maxBytes: 1 << 20))
    }
    #expect(error?.message.contains("limit") == true)
  }

  @Test func emptyAndMultiDocumentStreams() throws {
    #expect(try YAMLParser.parseDocuments([]).isEmpty)
    #expect(try YAMLParser.parseDocuments(Array("# only a comment\n".utf8)).isEmpty)
    #expect(try YAMLParser.parseDocuments(Array("a: 1\n---\nb: 2\n".utf8)).count == 2)
  }

  @Test func marksAreOneBasedAndCountScalars() throws {
    let docs = try YAMLParser.parseDocuments(Array("k: é\nname: x\n".utf8))
    guard case .mapping(let pairs) = docs[0].content else {
      Issue.record("expected a mapping")
      return
    }
    #expect(pairs[0].value.start.column == 4)
    #expect(pairs[1].key.start == YAMLMark(line: 2, column: 1, offset: 5), "offset counts scalars, as libyaml does")
  }
}
