/// A YAML problem with the position libyaml (or the composer's limits) reported.
public struct YAMLError: Error, Sendable, Hashable {
  public var message: String
  public var mark: YAMLMark?

  public init(message: String, mark: YAMLMark?) {
    self.message = message
    self.mark = mark
  }
}

/// Bounds that keep hostile input cheap: a document can never cost more than these.
///
/// Why: libyaml parses aliases but leaves their expansion to the composer; a "billion laughs"
/// document is a few hundred bytes that expands to 10⁹ nodes. Counting the expanded size of every
/// alias against `maxExpandedNodes` refuses it after a few thousand steps.
public struct YAMLLimits: Sendable {
  public var maxBytes: Int
  public var maxDepth: Int
  public var maxExpandedNodes: Int

  public init(maxBytes: Int = 4 << 20, maxDepth: Int = 64, maxExpandedNodes: Int = 100_000) {
    self.maxBytes = maxBytes
    self.maxDepth = maxDepth
    self.maxExpandedNodes = maxExpandedNodes
  }
}
