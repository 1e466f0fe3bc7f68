/// A position in a YAML source: 1-based line and column (columns count Unicode scalars, as
/// libyaml does) and the 0-based offset, also counted in Unicode scalars (libyaml's `index`).
public struct YAMLMark: Sendable, Hashable {
  public var line: Int
  public var column: Int
  public var offset: Int

  public init(line: Int, column: Int, offset: Int) {
    self.line = line
    self.column = column
    self.offset = offset
  }
}

/// One node of a composed YAML document, with the source range it came from.
///
/// Aliases are resolved while composing, so a node reached through an alias is a copy of its
/// anchor (sharing storage) and keeps the anchor's marks.
public struct YAMLNode: Sendable {
  public enum Content: Sendable {
    case scalar(String)
    case sequence([YAMLNode])
    case mapping([YAMLPair])
  }

  /// How a scalar was written; only plain scalars are resolved to null, booleans and numbers.
  public enum ScalarStyle: Sendable, Hashable { case plain, quoted, block, none }

  public var content: Content
  public var tag: String?
  public var style: ScalarStyle
  public var start: YAMLMark
  public var end: YAMLMark

  public init(content: Content, tag: String? = nil, style: ScalarStyle = .none, start: YAMLMark, end: YAMLMark) {
    self.content = content
    self.tag = tag
    self.style = style
    self.start = start
    self.end = end
  }

  /// The scalar text, or nil for collections.
  public var scalar: String? {
    if case .scalar(let s) = content { return s }
    return nil
  }

  /// True for a plain `~`, `null`, `Null`, `NULL` or empty plain scalar (YAML 1.1 / 1.2 core null).
  public var isNull: Bool {
    guard case .scalar(let s) = content, style == .plain, tag == nil else { return false }
    return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
  }

  /// A short name of the node's kind for messages: "a mapping", "a list", "a string".
  public var kindDescription: String {
    switch content {
    case .scalar: return isNull ? "null" : "a scalar"
    case .sequence: return "a list"
    case .mapping: return "a mapping"
    }
  }
}

/// A key/value entry of a mapping, in source order.
public struct YAMLPair: Sendable {
  public var key: YAMLNode
  public var value: YAMLNode

  public init(key: YAMLNode, value: YAMLNode) {
    self.key = key
    self.value = value
  }
}
