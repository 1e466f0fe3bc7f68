/// A 1-based line/column position in a source file, plus its byte offset.
public struct SourcePosition: Sendable, Hashable, Codable, Comparable {
  public var line: Int
  public var column: Int
  public var byte: Int

  public init(line: Int, column: Int, byte: Int = 0) {
    self.line = line
    self.column = column
    self.byte = byte
  }

  public static func < (a: Self, b: Self) -> Bool { (a.line, a.column) < (b.line, b.column) }
}

/// Where in which file a diagnostic points.
public struct SourceRange: Sendable, Hashable, Codable {
  public var file: String
  public var start: SourcePosition
  public var end: SourcePosition

  public init(file: String, start: SourcePosition, end: SourcePosition? = nil) {
    self.file = file
    self.start = start
    self.end = end ?? start
  }
}
