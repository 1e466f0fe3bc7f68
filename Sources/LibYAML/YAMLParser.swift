internal import CYAML

/// Composes YAML bytes into node trees with libyaml's event parser.
///
/// Why events and not `yaml_parser_load`: the loader expands aliases without bound and keeps no
/// way to stop early; composing ourselves lets us count expansion, cap nesting depth and keep a
/// mark on every node. Everything libyaml allocates is freed before returning.
public enum YAMLParser {
  /// Parses every document in `bytes`.
  ///
  /// - Returns: one root node per document (an empty stream gives an empty array).
  /// - Throws: `YAMLError` with the position of the first syntax error or exceeded limit.
  public static func parseDocuments(_ bytes: [UInt8], limits: YAMLLimits = YAMLLimits()) throws(YAMLError) -> [YAMLNode] {
    if bytes.count > limits.maxBytes {
      throw YAMLError(message: "file is \(bytes.count) bytes; the limit is \(limits.maxBytes) bytes", mark: nil)
    }
    if let nul = bytes.firstIndex(of: 0) {
      throw YAMLError(message: "file contains a NUL byte", mark: markOf(offset: nul, in: bytes))
    }
    if let bad = firstInvalidUTF8(bytes) {
      throw YAMLError(message: "file is not valid UTF-8", mark: markOf(offset: bad, in: bytes))
    }
    let result: Result<[YAMLNode], YAMLError> = bytes.withUnsafeBufferPointer { buffer in
      var composer = Composer(limits: limits)
      return composer.run(buffer)
    }
    return try result.get()
  }

  /// The line/column of a byte offset, for errors found before libyaml runs.
  static func markOf(offset: Int, in bytes: [UInt8]) -> YAMLMark {
    var line = 1
    var column = 1
    var i = 0
    while i < offset {
      if bytes[i] == UInt8(ascii: "\n") {
        line += 1
        column = 1
      } else if bytes[i] & 0xC0 != 0x80 {
        column += 1
      }
      i += 1
    }
    return YAMLMark(line: line, column: column, offset: offset)
  }

  static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
    if bytes.allSatisfy({ $0 < 0x80 }) { return nil }
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    var offset = 0
    while true {
      switch decoder.decode(&iterator) {
      case .scalarValue(let s): offset += UTF8.width(s)
      case .emptyInput: return nil
      case .error: return offset
      }
    }
  }
}

/// The event-to-tree state machine. One instance per parse.
private struct Composer {
  struct Frame {
    var isMapping: Bool
    var items: [YAMLNode] = []
    var pairs: [YAMLPair] = []
    var pendingKey: YAMLNode?
    var tag: String?
    var anchor: String?
    var start: YAMLMark
    /// The expansion counter before this collection started: its size is the difference at its end.
    var countBefore: Int
  }

  let limits: YAMLLimits
  var stack: [Frame] = []
  var documents: [YAMLNode] = []
  var current: YAMLNode?
  /// Anchor name → (node, expanded node count), so an alias costs its full expanded size.
  var anchors: [String: (node: YAMLNode, size: Int)] = [:]
  /// Nodes composed so far, counting every alias at its anchor's full size.
  var expanded = 0

  init(limits: YAMLLimits) { self.limits = limits }

  mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<[YAMLNode], YAMLError> {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return .success([]) }
    var parser = yaml_parser_t()
    guard yaml_parser_initialize(&parser) == 1 else {
      return .failure(YAMLError(message: "libyaml could not allocate a parser", mark: nil))
    }
    defer { yaml_parser_delete(&parser) }
    yaml_parser_set_input_string(&parser, base, buffer.count)
    var event = yaml_event_t()
    while true {
      guard yaml_parser_parse(&parser, &event) == 1 else {
        return .failure(Self.parserError(parser))
      }
      defer { yaml_event_delete(&event) }
      if event.type == YAML_STREAM_END_EVENT { break }
      if let error = handle(event) { return .failure(error) }
    }
    return .success(documents)
  }

  static func mark(_ m: yaml_mark_t) -> YAMLMark {
    YAMLMark(line: Int(m.line) + 1, column: Int(m.column) + 1, offset: Int(m.index))
  }

  static func parserError(_ parser: yaml_parser_t) -> YAMLError {
    var message = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
    if let context = parser.context {
      // Name where the construct began (an unclosed quote is otherwise reported only at the end
      // of the file, where parsing stopped), as PyYAML does.
      let began = mark(parser.context_mark)
      message += " (" + String(cString: context) + " that began at line \(began.line), column \(began.column))"
    }
    return YAMLError(message: message, mark: mark(parser.problem_mark))
  }

  static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
    p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
  }

  mutating func charge(_ n: Int, at mark: YAMLMark) -> YAMLError? {
    expanded += n
    guard expanded > limits.maxExpandedNodes else { return nil }
    return YAMLError(
      message: "document expands to more than \(limits.maxExpandedNodes) nodes (aliases are expanded with a bound)",
      mark: mark)
  }

  mutating func handle(_ event: yaml_event_t) -> YAMLError? {
    let start = Self.mark(event.start_mark)
    let end = Self.mark(event.end_mark)
    switch event.type {
    case YAML_DOCUMENT_START_EVENT:
      anchors = [:]
      current = nil
    case YAML_DOCUMENT_END_EVENT:
      if let root = current { documents.append(root) }
    case YAML_SCALAR_EVENT:
      if let error = charge(1, at: start) { return error }
      let s = event.data.scalar
      let text = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
      let style: YAMLNode.ScalarStyle
      switch s.style {
      case YAML_PLAIN_SCALAR_STYLE: style = .plain
      case YAML_SINGLE_QUOTED_SCALAR_STYLE, YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .quoted
      default: style = .block
      }
      let node = YAMLNode(content: .scalar(text), tag: Self.string(s.tag), style: style, start: start, end: end)
      if let anchor = Self.string(s.anchor) { anchors[anchor] = (node, 1) }
      attach(node)
    case YAML_ALIAS_EVENT:
      let name = Self.string(event.data.alias.anchor) ?? ""
      guard let target = anchors[name] else {
        return YAMLError(message: "alias '*\(name)' refers to no anchor defined before it", mark: start)
      }
      if let error = charge(target.size, at: start) { return error }
      attach(target.node)
    case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
      if stack.count >= limits.maxDepth {
        return YAMLError(message: "nesting is deeper than \(limits.maxDepth) levels", mark: start)
      }
      let before = expanded
      if let error = charge(1, at: start) { return error }
      let isMapping = event.type == YAML_MAPPING_START_EVENT
      let tag = Self.string(isMapping ? event.data.mapping_start.tag : event.data.sequence_start.tag)
      let anchor = Self.string(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
      stack.append(Frame(isMapping: isMapping, tag: tag, anchor: anchor, start: start, countBefore: before))
    case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
      guard let frame = stack.popLast() else { return nil }
      let content: YAMLNode.Content = frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items)
      let node = YAMLNode(content: content, tag: frame.tag, start: frame.start, end: end)
      if let anchor = frame.anchor { anchors[anchor] = (node, expanded - frame.countBefore) }
      attach(node)
    default:
      break
    }
    return nil
  }

  mutating func attach(_ node: YAMLNode) {
    guard !stack.isEmpty else {
      current = node
      return
    }
    let top = stack.count - 1
    if !stack[top].isMapping {
      stack[top].items.append(node)
    } else if let key = stack[top].pendingKey {
      stack[top].pairs.append(YAMLPair(key: key, value: node))
      stack[top].pendingKey = nil
    } else {
      stack[top].pendingKey = node
    }
  }
}
