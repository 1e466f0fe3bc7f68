import DroverBasics
import DroverModel
import Foundation

/// Console output matched line by line against a pool's pattern, every cost bounded: each line is
/// cut to its first `ConsoleBound.line` bytes, and the lines of one log share one step budget,
/// so a guest that prints long or hostile lines cannot make a pass slow.
enum ConsoleLines {
  /// The last line matching `pattern`, trimmed, with the offset it starts at in `bytes`.
  static func last(in bytes: [UInt8], matching pattern: BoundedPattern) -> (start: Int, line: String)? {
    var budget = BoundedPattern.stepBudget
    var end = bytes.count
    while end > 0 && budget > 0 {
      var start = end
      while start > 0 && bytes[start - 1] != 0x0A { start -= 1 }
      if let line = matchingLine(bytes, start..<end, pattern, &budget) { return (start, line) }
      end = start - (start > 0 ? 1 : 0)
      if start == 0 { break }
    }
    return nil
  }

  /// Whether any line matches `pattern`.
  static func anyMatches(_ bytes: [UInt8], _ pattern: BoundedPattern) -> Bool {
    var budget = BoundedPattern.stepBudget
    var start = 0
    while start < bytes.count && budget > 0 {
      var end = start
      while end < bytes.count && bytes[end] != 0x0A { end += 1 }
      if matchingLine(bytes, start..<end, pattern, &budget) != nil { return true }
      start = end + 1
    }
    return false
  }

  static func matchingLine(_ bytes: [UInt8], _ range: Range<Int>, _ pattern: BoundedPattern, _ budget: inout Int) -> String? {
    let cut = range.lowerBound..<min(range.upperBound, range.lowerBound + ConsoleBound.line)
    let line = String(decoding: bytes[cut], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return !line.isEmpty && pattern.matches(line, budget: &budget) ? line : nil
  }
}
