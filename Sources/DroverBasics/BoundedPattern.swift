/// A regular expression from a pool file, matched in time linear in the text: heartbeat, console,
/// SSH-output and HTTP-body patterns run over what a guest wrote.
///
/// Why not Swift's `Regex` (or PCRE): they backtrack, so a pattern such as `(a+)+$` or
/// `.*a.*b.*c` takes exponential or high-polynomial time on text a guest can print, and a heal
/// pass would stall on it. This engine simulates the pattern's NFA over the text once (a Pike
/// VM), so its cost is at most the text's length times the program's size, both bounded; a step
/// budget stops it besides. What it cannot match in that time it does not accept: backreferences
/// and lookaround are refused when the pool is validated, with the column that uses them.
///
/// Syntax: literals, `.`, `[...]`/`[^...]` with ranges, `\d \D \w \W \s \S` (inside classes
/// too), `\t \n \r`, any other escaped punctuation, `^ $ \b \B`, groups `(...)`, `(?:...)`,
/// `(?<name>...)`, alternation `|`, quantifiers `* + ? {n} {n,} {n,m}` (a trailing `?` or `+`
/// is accepted and changes nothing: only whether it matches is asked), and `(?i)` at the start.
public struct BoundedPattern: Sendable, Equatable {
  /// Why a pattern was refused, and the 1-based column in it.
  public struct Refusal: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var column: Int
    public var description: String { "\(message) (column \(column))" }
  }

  public let source: String
  let program: [Instruction]
  let caseInsensitive: Bool

  /// Longest pattern accepted, in characters.
  public static let maxLength = 1024
  /// Largest compiled program (a counted repeat `{n,m}` copies its body).
  public static let maxProgram = 2000
  /// State visits one `matches` may spend before it gives up (no match).
  public static let stepBudget = 10_000_000

  public init(_ pattern: String) throws(Refusal) {
    source = pattern
    var parser = Parser(Array(pattern.unicodeScalars))
    caseInsensitive = parser.caseInsensitive
    let tree = try parser.parse()
    var compiler = Compiler()
    try compiler.emit(tree)
    compiler.program.append(.match)
    guard compiler.program.count <= Self.maxProgram else {
      throw Refusal(message: "pattern is too large once its repeats are expanded (\(compiler.program.count) steps, at most \(Self.maxProgram))", column: 1)
    }
    program = compiler.program
  }

  /// Whether the pattern matches anywhere in `text` (`^` and `$` are the text's start and end).
  public func matches(_ text: String) -> Bool { search(text).matched }

  /// Whether the pattern matches anywhere in `text`, and whether it ran out of steps.
  public func search(_ text: String) -> (matched: Bool, exhausted: Bool) {
    var budget = Self.stepBudget
    let matched = matches(text, budget: &budget)
    return (matched, budget <= 0)
  }

  /// Whether the pattern matches in `text`, spending steps from `budget` (shared by the lines of
  /// one log); false once it is spent.
  public func matches(_ text: String, budget: inout Int) -> Bool {
    guard budget > 0 else { return false }
    return run(Array(text.unicodeScalars), budget: &budget)
  }

  /// The Pike VM: every thread advances one character per step, at most one thread per program
  /// position, so each character costs at most the program's size.
  func run(_ text: [Unicode.Scalar], budget: inout Int) -> Bool {
    var current = ThreadList(size: program.count), next = ThreadList(size: program.count)
    var stack: [Int] = []
    var steps = 0
    defer { budget -= steps }
    let limit = budget
    for position in 0...text.count {
      // Unanchored: a new thread starts at every position.
      if add(0, at: position, text, to: &current, stack: &stack, steps: &steps) { return true }
      if steps >= limit { return false }
      guard position < text.count, !current.pcs.isEmpty else {
        if position >= text.count { break }
        continue
      }
      let c = text[position]
      next.clear()
      for pc in current.pcs {
        let advances: Bool
        switch program[pc] {
        case .char(let expected): advances = equal(c, expected)
        case .any: advances = c != "\n"
        case .set(let set): advances = set.contains(c, caseInsensitive: caseInsensitive)
        default: advances = false
        }
        if advances, add(pc + 1, at: position + 1, text, to: &next, stack: &stack, steps: &steps) { return true }
      }
      swap(&current, &next)
      if steps >= limit { return false }
    }
    return false
  }

  /// Follows jumps, splits and assertions from `start`; true when `match` is reached.
  func add(_ start: Int, at position: Int, _ text: [Unicode.Scalar], to list: inout ThreadList, stack: inout [Int], steps: inout Int) -> Bool {
    stack.removeAll(keepingCapacity: true)
    stack.append(start)
    while let pc = stack.popLast() {
      guard list.insert(pc) else { continue }
      steps += 1
      switch program[pc] {
      case .match: return true
      case .jump(let to): stack.append(to)
      case .split(let a, let b):
        stack.append(b)
        stack.append(a)
      case .assert(let kind):
        if holds(kind, at: position, text) { stack.append(pc + 1) }
      case .char, .any, .set: break
      }
    }
    return false
  }

  func equal(_ a: Unicode.Scalar, _ b: Unicode.Scalar) -> Bool {
    a == b || (caseInsensitive && ScalarSet.lower(a) == ScalarSet.lower(b))
  }

  func holds(_ kind: Assertion, at position: Int, _ text: [Unicode.Scalar]) -> Bool {
    switch kind {
    case .start: return position == 0
    case .end: return position == text.count
    case .wordBoundary, .notWordBoundary:
      let before = position > 0 && ScalarSet.word.contains(text[position - 1])
      let after = position < text.count && ScalarSet.word.contains(text[position])
      return (before != after) == (kind == .wordBoundary)
    }
  }
}

extension BoundedPattern {
  enum Assertion: Sendable, Equatable { case start, end, wordBoundary, notWordBoundary }

  enum Instruction: Sendable, Equatable {
    case char(Unicode.Scalar)
    case any
    case set(ScalarSet)
    case split(Int, Int)
    case jump(Int)
    case assert(Assertion)
    case match
  }

  /// Program positions reached at one text position, each once (a sparse set).
  struct ThreadList {
    var pcs: [Int] = []
    var seen: [Int]
    var generation = 1

    init(size: Int) { seen = Array(repeating: 0, count: size) }

    mutating func insert(_ pc: Int) -> Bool {
      if seen[pc] == generation { return false }
      seen[pc] = generation
      pcs.append(pc)
      return true
    }

    mutating func clear() {
      pcs.removeAll(keepingCapacity: true)
      generation += 1
    }
  }

  /// A bracket expression or class escape: ranges, possibly negated.
  struct ScalarSet: Sendable, Equatable {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    static let digit = ScalarSet(ranges: [48...57])
    static let word = ScalarSet(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = ScalarSet(ranges: [9...13, 32...32])

    func contains(_ c: Unicode.Scalar) -> Bool {
      ranges.contains { $0.contains(c.value) } != negated
    }

    func contains(_ c: Unicode.Scalar, caseInsensitive: Bool) -> Bool {
      guard caseInsensitive else { return contains(c) }
      let lower = Self.lower(c).value, upper = Self.upper(c).value
      return ranges.contains { $0.contains(lower) || $0.contains(upper) } != negated
    }

    static func lower(_ c: Unicode.Scalar) -> Unicode.Scalar { (65...90).contains(c.value) ? Unicode.Scalar(c.value + 32) ?? c : c }
    static func upper(_ c: Unicode.Scalar) -> Unicode.Scalar { (97...122).contains(c.value) ? Unicode.Scalar(c.value - 32) ?? c : c }

    /// The complement's ranges (for `\D`, `\W`, `\S` inside a bracket expression).
    var inverted: [ClosedRange<UInt32>] {
      var result: [ClosedRange<UInt32>] = []
      var next: UInt32 = 0
      for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if r.lowerBound > next { result.append(next...(r.lowerBound - 1)) }
        next = max(next, r.upperBound + 1)
      }
      if next <= 0x10FFFF { result.append(next...0x10FFFF) }
      return result
    }
  }

  indirect enum Node {
    case empty
    case char(Unicode.Scalar)
    case any
    case set(ScalarSet)
    case assert(Assertion)
    case sequence([Node])
    case alternation([Node])
    case repeated(Node, min: Int, max: Int?)
  }
}
