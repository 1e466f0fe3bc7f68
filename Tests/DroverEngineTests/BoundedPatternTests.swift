import DroverBasics
import Foundation
import Testing

/// #37 part 4: patterns from pool files are matched in linear time; what cannot be is refused
/// with its column. The table checks the engine against Swift's own `Regex` on the same texts.
@Suite struct BoundedPatternTests {
  static let agreeing: [(String, [String])] = [
    ("DROVER READY", ["x DROVER READY y", "DROVER READ", ""]),
    ("DROVER READY v[0-9]+", ["DROVER READY v12", "DROVER READY v", "DROVER READY vx1"]),
    ("^active$", ["active", "inactive", "active\n", "activex"]),
    ("a|b|cd", ["c", "xcd", "b"]),
    ("(ab)+c", ["ababc", "abc", "ac", "aabc"]),
    ("colou?r", ["color", "colour", "colouur"]),
    ("x{2,3}y", ["xy", "xxy", "xxxxy"]),
    ("x{2}", ["x", "xx"]),
    ("x{2,}z", ["xxxxz", "xz"]),
    ("[^a-c]+$", ["abc", "abcd", "d"]),
    ("\\d+\\.\\d+", ["v1.2", "v1.", "1.x"]),
    ("\\bREADY\\b", ["IS READY.", "UNREADY", "READYS"]),
    ("\\s\\S\\w\\W", [" a_.", " a_b", "\ta1!"]),
    ("[[:digit:]]{3}", ["12", "123"]),
    ("a.c", ["abc", "a\nc", "ac"]),
    ("(?:ab|cd)*e", ["abcde", "e", "abce"]),
    ("(?<word>ok)", ["it is ok", "o k"]),
    ("a{0}b", ["b", "ab"]),
    ("(a*)*b", ["aaab", "aaaa"]),
    ("[a\\-z]", ["-", "b"]),
    ("ba{,2}c", ["bc", "baac", "baaac"]),
    ("x*?y", ["xxy", "x"]),
    ("^[\\d\\s]+$", ["1 2", "1a"]),
    ("[\\W]", ["abc", "ab!"]),
    ("[^\\S]", ["abc", "a c"]),
  ]

  @Test(arguments: agreeing)
  func agreesWithSwiftRegex(_ pattern: String, _ texts: [String]) throws {
    let bounded = try BoundedPattern(pattern)
    let reference = try Regex(pattern)
    for text in texts {
      #expect(bounded.matches(text) == text.contains(reference), "/\(pattern)/ on \(text.debugDescription)")
    }
  }

  @Test func caseInsensitiveFlag() throws {
    let p = try BoundedPattern("(?i)drover ready")
    #expect(p.matches("DROVER READY") && p.matches("Drover Ready") && !p.matches("drover"))
  }

  static let refused: [(String, String, Int)] = [
    ("(unclosed", "missing ')'", 1),
    ("(a)\\1", "backreferences", 4),
    ("a(?=b)", "lookaround", 2),
    ("a(?<!b)", "lookaround", 2),
    ("*a", "nothing to repeat", 1),
    ("a**", "cannot follow another", 3),
    ("[a-", "missing ']'", 1),
    ("x{3,2}", "reversed", 2),
    ("x{5000}", "above 1000", 2),
    ("((((a{1000}){1000})))", "too large", 1),
    ("\\q", "unknown escape", 1),
    ("a)", "unmatched ')'", 2),
    ("trail\\", "cannot end with", 6),
  ]

  @Test(arguments: refused)
  func refusedWithItsColumn(_ pattern: String, _ message: String, _ column: Int) {
    do {
      _ = try BoundedPattern(pattern)
      Issue.record("/\(pattern)/ was accepted")
    } catch {
      #expect(error.message.contains(message) && error.column == column, "/\(pattern)/: \(error)")
    }
  }

  /// Patterns that make a backtracking engine take exponential or high-polynomial time finish at
  /// once here; the work is counted in steps, not timed.
  @Test func hostileTextsCostLinearSteps() throws {
    let text = String(repeating: "a", count: 4096) + "!"
    for pattern in ["(a+)+$", "^(a|a)*$", "(a|aa)+b", ".*a.*a.*a.*b", "(x+x+)+y"] {
      let p = try BoundedPattern(pattern)
      let outcome = p.search(text)
      #expect(!outcome.matched && !outcome.exhausted, "/\(pattern)/")
    }
    // The budget holds even for the largest program over a long text.
    let wide = try BoundedPattern("(" + Array(repeating: "a?", count: 400).joined() + ")*b")
    var budget = 1_000_000
    #expect(!wide.matches(String(repeating: "a", count: 200_000), budget: &budget) && budget <= 0, "the step budget stops it")
  }
}
