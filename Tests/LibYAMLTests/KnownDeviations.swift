/// Where libyaml 0.2.5 (a YAML 1.1 parser) disagrees with the YAML 1.2 test suite.
///
/// One explicit list, checked both ways by `CorpusTests`: a case here that libyaml starts to
/// handle correctly fails the test until it is removed. Every rejection still carries a position.
enum KnownDeviations {
  static let emptyKey = "libyaml does not accept an implicit empty (null) mapping key (YAML 1.2 allows `: value`)"
  static let flowColon = "libyaml rejects ':' adjacent to a flow-context key or value (YAML 1.2 allows `{\"a\":b}`, `[:x]`)"
  static let multilineFlowKey = "libyaml rejects an implicit flow-mapping key that spans lines or is followed by a comment"
  static let tabs = "libyaml rejects tabs as separation whitespace where YAML 1.2 allows them"
  static let tabInBlockScalar = "libyaml rejects a tab in the indentation of a block scalar line"
  static let directive = "libyaml rejects reserved/unknown directives (`%FOO`) that YAML 1.2 says to ignore"
  static let bareDocument = "libyaml requires `---` before a document that follows one ended with `...` or a bare one"
  static let anchorChars = "libyaml only allows alphanumerics, '-' and '_' in anchor names (YAML 1.2 allows any non-space)"
  static let yaml13 = "libyaml refuses `%YAML 1.3` (a newer minor version YAML 1.2 accepts with a warning)"
  static let explicitKey = "libyaml does not accept an anchored or empty explicit key followed by an implicit one"
  static let plainColon = "libyaml rejects ':' inside a plain scalar in flow context (`::vector`, `a:b` in flow)"
  static let documentEndOnly = "libyaml rejects a stream that is only a `...` document end marker"

  /// Valid YAML 1.2 that libyaml rejects (each with a positioned error).
  static let validRejected: [String: String] = [
    "2JQS": emptyKey, "2LFX": directive, "2SXE": anchorChars, "4ABK": plainColon, "4MUZ-00": flowColon,
    "4MUZ-01": flowColon, "4MUZ-02": flowColon, "58MP": flowColon, "5MUD": multilineFlowKey, "5T43": flowColon,
    "6BCT": tabs, "6CA3": tabs, "6LVF": directive, "6M2F": explicitKey, "7Z25": bareDocument, "8XYN": anchorChars,
    "96NN-00": tabInBlockScalar, "96NN-01": tabInBlockScalar, "9SA2": multilineFlowKey, "A2M4": tabs, "BEC7": yaml13,
    "CFD4": flowColon, "DBG4": plainColon, "DK3J": bareDocument, "DK95-00": tabs, "DK95-03": tabs, "DK95-04": tabs,
    "FP8R": bareDocument, "FRK4": plainColon, "HM87-00": flowColon, "HWV9": documentEndOnly, "K3WX": multilineFlowKey,
    "M2N8-00": emptyKey, "M7A3": bareDocument, "MUS6-05": directive, "MUS6-06": directive, "NHX8": emptyKey,
    "NJ66": multilineFlowKey, "NKF9": emptyKey, "Q5MG": tabs, "QT73": documentEndOnly, "R4YG": tabInBlockScalar,
    "S3PD": emptyKey, "SM9W-01": emptyKey, "UKK6-00": emptyKey, "UT92": multilineFlowKey, "VJP3-01": multilineFlowKey,
    "W4TN": directive, "W5VH": anchorChars, "Y79Y-001": tabInBlockScalar, "Y79Y-010": tabs,
  ]

  /// Invalid YAML that libyaml accepts. Drover's spec loader still refuses every one of these as a
  /// pool (wrong shape, several documents, or missing keys): see `CorpusThroughSpecLoaderTests`.
  static let invalidAccepted: [String: String] = [
    "9C9N": "libyaml accepts flow-sequence continuation lines indented less than their parent",
    "9HCY": "libyaml accepts a directive after a document without an explicit `...` end",
    "9JBA": "libyaml accepts a comment with no space after a flow sequence's closing bracket",
    "CVW2": "libyaml accepts a comment with no space after a comma in a flow sequence",
    "DK95-01": "libyaml accepts a tab as indentation of a double-quoted continuation line",
    "EB22": "libyaml accepts a directive after a bare document without `...`",
    "G5U8": "libyaml accepts `-` as a plain scalar inside a flow sequence",
    "MUS6-00": "libyaml accepts a comment with no space after a %YAML directive",
    "MUS6-01": "libyaml accepts a repeated %YAML directive in a later document",
    "QB6E": "libyaml accepts a multi-line quoted scalar whose continuation lines are not indented",
    "RHX7": "libyaml accepts a directive after a document without `...`",
    "S98Z": "libyaml accepts a block scalar whose leading empty line is more indented than the content",
    "SU5Z": "libyaml accepts a comment with no space after a quoted scalar",
    "X4QW": "libyaml accepts a comment with no space after a block scalar indicator",
    "Y79Y-003": "libyaml accepts a tab as indentation inside a flow sequence",
    "YJV2": "libyaml accepts `-` as a plain scalar inside a flow sequence",
  ]
}
