/// Parses and compiles a `BoundedPattern`: recursive descent over the pattern's scalars into a
/// tree, then a Pike-VM program. Everything the engine cannot run in linear time is refused here.
extension BoundedPattern {
  struct Parser {
    let scalars: [Unicode.Scalar]
    var index = 0
    var caseInsensitive = false
    var depth = 0

    init(_ scalars: [Unicode.Scalar]) {
      self.scalars = scalars
      if scalars.starts(with: Array("(?i)".unicodeScalars)) {
        caseInsensitive = true
        index = 4
      }
    }

    func refuse(_ message: String, at column: Int? = nil) -> Refusal { Refusal(message: message, column: (column ?? index) + 1) }

    var peek: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

    mutating func parse() throws(Refusal) -> Node {
      guard scalars.count <= BoundedPattern.maxLength else {
        throw Refusal(message: "pattern is longer than \(BoundedPattern.maxLength) characters", column: BoundedPattern.maxLength + 1)
      }
      let node = try alternation()
      if let c = peek { throw refuse(c == ")" ? "unmatched ')'" : "unexpected '\(c)'") }
      return node
    }

    mutating func alternation() throws(Refusal) -> Node {
      var branches = [try sequence()]
      while peek == "|" {
        index += 1
        branches.append(try sequence())
      }
      return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func sequence() throws(Refusal) -> Node {
      var items: [Node] = []
      while let c = peek, c != "|", c != ")" {
        items.append(try quantified(try atom()))
      }
      return items.count == 1 ? items[0] : .sequence(items)
    }

    mutating func quantified(_ atom: Node) throws(Refusal) -> Node {
      var node = atom
      var quantifiers = 0
      while let c = peek, c == "*" || c == "+" || c == "?" || (c == "{" && isCountedRepeat) {
        quantifiers += 1
        if quantifiers > 1 { throw refuse("a quantifier cannot follow another; group the first, as in (a+)*") }
        if case .assert = node { throw refuse("an anchor cannot be repeated") }
        let (min, max) = try bounds()
        node = .repeated(node, min: min, max: max)
        // Lazy and possessive forms match the same texts: only whether it matches is asked.
        if peek == "?" || peek == "+" { index += 1 }
      }
      return node
    }

    /// Whether `{` starts `{n}`, `{n,}` or `{n,m}` (else it is a literal brace).
    var isCountedRepeat: Bool {
      var i = index + 1
      var digits = 0
      while i < scalars.count, ("0"..."9").contains(scalars[i]) {
        i += 1
        digits += 1
      }
      guard i < scalars.count else { return false }
      if scalars[i] == "}" { return digits > 0 }
      guard scalars[i] == "," else { return false }
      i += 1
      var upper = 0
      while i < scalars.count, ("0"..."9").contains(scalars[i]) {
        i += 1
        upper += 1
      }
      // {n,}, {n,m} and {,m}
      return (digits > 0 || upper > 0) && i < scalars.count && scalars[i] == "}"
    }

    mutating func bounds() throws(Refusal) -> (Int, Int?) {
      let c = scalars[index]
      index += 1
      switch c {
      case "*": return (0, nil)
      case "+": return (1, nil)
      case "?": return (0, 1)
      default:
        let column = index - 1
        func number(_ p: inout Parser) -> Int? {
          var value = 0
          var any = false
          while let d = p.peek, ("0"..."9").contains(d) {
            value = min(value * 10 + Int(d.value - 48), 1_000_000)
            any = true
            p.index += 1
          }
          return any ? value : nil
        }
        let low = number(&self) ?? 0
        var high: Int? = low
        if peek == "," {
          index += 1
          high = number(&self)
        }
        index += 1  // "}"
        if let high, high < low { throw refuse("repeat {\(low),\(high)} has its bounds reversed", at: column) }
        if low > 1000 || (high ?? 0) > 1000 { throw refuse("a repeat count above 1000", at: column) }
        return (low, high)
      }
    }

    mutating func atom() throws(Refusal) -> Node {
      let c = scalars[index]
      switch c {
      case "(":
        let open = index
        index += 1
        if peek == "?" {
          let rest = String(String.UnicodeScalarView(scalars[index..<Swift.min(index + 3, scalars.count)]))
          if rest.hasPrefix("?:") {
            index += 2
          } else if rest.hasPrefix("?<") && !rest.hasPrefix("?<=") && !rest.hasPrefix("?<!") {
            index += 2
            while let n = peek, n != ">" {
              guard n == "_" || ScalarSet.word.contains(n) else { throw refuse("a group name may hold letters, digits and '_'") }
              index += 1
            }
            guard peek == ">" else { throw refuse("unterminated group name", at: open) }
            index += 1
          } else if rest.hasPrefix("?=") || rest.hasPrefix("?!") || rest.hasPrefix("?<") {
            throw refuse("lookaround is not supported (it cannot be matched in linear time)", at: open)
          } else {
            throw refuse("unsupported group '(\(rest)'; only (?:...), (?<name>...) and a leading (?i) are", at: open)
          }
        }
        depth += 1
        guard depth <= 64 else { throw refuse("groups nested deeper than 64") }
        let inner = try alternation()
        depth -= 1
        guard peek == ")" else { throw refuse("missing ')' for the group opened here", at: open) }
        index += 1
        return inner
      case ")": throw refuse("unmatched ')'")
      case "*", "+", "?": throw refuse("'\(c)' has nothing to repeat")
      case "{" where isCountedRepeat: throw refuse("a repeat has nothing to repeat")
      case ".":
        index += 1
        return .any
      case "^":
        index += 1
        return .assert(.start)
      case "$":
        index += 1
        return .assert(.end)
      case "[": return try bracket()
      case "\\": return try escape()
      default:
        index += 1
        return .char(c)
      }
    }

    mutating func escape() throws(Refusal) -> Node {
      let column = index
      index += 1
      guard let c = peek else { throw refuse("a pattern cannot end with '\\'", at: column) }
      index += 1
      if let named = Self.classEscape(c) { return .set(named) }
      switch c {
      case "b": return .assert(.wordBoundary)
      case "B": return .assert(.notWordBoundary)
      case "A": return .assert(.start)
      case "z", "Z": return .assert(.end)
      case "t": return .char("\t")
      case "n": return .char("\n")
      case "r": return .char("\r")
      case "1"..."9", "k", "g":
        throw refuse("backreferences are not supported (they cannot be matched in linear time)", at: column)
      default:
        guard !ScalarSet.word.contains(c) else { throw refuse("unknown escape '\\\(c)'", at: column) }
        return .char(c)
      }
    }

    /// `\d \D \w \W \s \S` as a set, or nil for any other escape.
    static func classEscape(_ c: Unicode.Scalar) -> ScalarSet? {
      switch c {
      case "d": return .digit
      case "D": return ScalarSet(ranges: ScalarSet.digit.ranges, negated: true)
      case "w": return .word
      case "W": return ScalarSet(ranges: ScalarSet.word.ranges, negated: true)
      case "s": return .space
      case "S": return ScalarSet(ranges: ScalarSet.space.ranges, negated: true)
      default: return nil
      }
    }

    mutating func bracket() throws(Refusal) -> Node {
      let open = index
      index += 1
      var set = ScalarSet()
      if peek == "^" {
        set.negated = true
        index += 1
      }
      var first = true
      while let c = peek, c != "]" || first {
        first = false
        var low: Unicode.Scalar = c
        index += 1
        if c == "[", peek == ":" {
          let names: [(String, [ClosedRange<UInt32>])] = [
            ("alpha", [65...90, 97...122]), ("digit", [48...57]), ("alnum", [48...57, 65...90, 97...122]),
            ("space", [9...13, 32...32]), ("upper", [65...90]), ("lower", [97...122]), ("xdigit", [48...57, 65...70, 97...102]),
            ("punct", [33...47, 58...64, 91...96, 123...126]), ("print", [32...126]),
          ]
          guard let (name, ranges) = names.first(where: { scalars[index...].starts(with: Array(":\($0.0):]".unicodeScalars)) }) else {
            throw refuse("unknown character class", at: index - 1)
          }
          index += name.unicodeScalars.count + 3
          set.ranges += ranges
          continue
        }
        if c == "\\" {
          guard let e = peek else { break }
          index += 1
          if let named = Self.classEscape(e) {
            set.ranges += named.negated ? ScalarSet(ranges: named.ranges).inverted : named.ranges
            continue
          }
          switch e {
          case "t": low = "\t"
          case "n": low = "\n"
          case "r": low = "\r"
          default: low = e
          }
        }
        if peek == "-", index + 1 < scalars.count, scalars[index + 1] != "]" {
          index += 1
          var high = scalars[index]
          index += 1
          if high == "\\", let e = peek {
            index += 1
            high = e
          }
          guard high.value >= low.value else { throw refuse("range \(low)-\(high) is reversed", at: index - 3) }
          set.ranges.append(low.value...high.value)
        } else {
          set.ranges.append(low.value...low.value)
        }
      }
      guard peek == "]" else { throw refuse("missing ']' for the bracket opened here", at: open) }
      index += 1
      return .set(set)
    }
  }

  /// Emits the program: Thompson's construction, a counted repeat as copies of its body.
  struct Compiler {
    var program: [Instruction] = []

    mutating func emit(_ node: Node) throws(Refusal) {
      guard program.count <= BoundedPattern.maxProgram else {
        throw Refusal(message: "pattern is too large once its repeats are expanded (at most \(BoundedPattern.maxProgram) steps)", column: 1)
      }
      switch node {
      case .empty: break
      case .char(let c): program.append(.char(c))
      case .any: program.append(.any)
      case .set(let s): program.append(.set(s))
      case .assert(let a): program.append(.assert(a))
      case .sequence(let items):
        for item in items { try emit(item) }
      case .alternation(let branches):
        var jumps: [Int] = []
        for (i, branch) in branches.enumerated() {
          if i < branches.count - 1 {
            let split = program.count
            program.append(.split(split + 1, -1))
            try emit(branch)
            jumps.append(program.count)
            program.append(.jump(-1))
            program[split] = .split(split + 1, program.count)
          } else {
            try emit(branch)
          }
        }
        for j in jumps { program[j] = .jump(program.count) }
      case .repeated(let body, let min, let max):
        for _ in 0..<min { try emit(body) }
        if let max {
          // Each optional copy may be skipped to the end.
          var splits: [Int] = []
          for _ in min..<max {
            splits.append(program.count)
            program.append(.split(program.count + 1, -1))
            try emit(body)
          }
          for s in splits { program[s] = .split(s + 1, program.count) }
        } else {
          // A loop: its body may match the empty string, which the thread list's one-visit-per
          // position rule keeps from looping forever.
          let split = program.count
          program.append(.split(split + 1, -1))
          try emit(body)
          program.append(.jump(split))
          program[split] = .split(split + 1, program.count)
        }
      }
    }
  }
}
