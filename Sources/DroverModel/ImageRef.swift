/// A reference from a pool to a baked image: `name@version` or `name@sha256:<hex>`.
public struct ImageRef: Sendable, Hashable, Codable, CustomStringConvertible {
  public enum Selector: Sendable, Hashable, Codable {
    case version(String)
    case digest(String)
  }

  public var name: String
  public var selector: Selector

  public init(name: String, selector: Selector) {
    self.name = name
    self.selector = selector
  }

  /// Parses `name@version` / `name@sha256:hex`; nil when the text is not of that shape.
  public init?(parsing text: String) {
    let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, Self.isName(parts[0]), !parts[1].isEmpty else { return nil }
    name = String(parts[0])
    if parts[1].hasPrefix("sha256:") {
      let hex = parts[1].dropFirst(7)
      guard hex.count >= 12, hex.count <= 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
      selector = .digest(String(hex))
    } else {
      guard Self.isName(parts[1]) else { return nil }
      selector = .version(String(parts[1]))
    }
  }

  /// Names: letters, digits, `-`, `_`, `.`; start with a letter or digit; at most 63 characters.
  public static func isName(_ s: Substring) -> Bool {
    guard let first = s.first, first.isASCII, first.isLetter || first.isNumber, s.count <= 63 else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
  }

  public var description: String {
    switch selector {
    case .version(let v): return "\(name)@\(v)"
    case .digest(let d): return "\(name)@sha256:\(d)"
    }
  }
}
