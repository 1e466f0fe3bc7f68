import Foundation

/// One style of keys in every JSON document Drover writes for machines: snake_case.
///
/// Swift's own `convertToSnakeCase` splits units and acronyms letter by letter (`memoryMiB` →
/// `memory_mi_b`, `oldUUID` → `old_uuid` but back to `oldUuid`), so a document would neither read
/// well nor decode back. Here the known acronyms are words of their own, both ways, and a test
/// checks that every key of a full plan survives the round trip.
public enum SnakeCaseJSON {
  /// Spelled as they are in property names; longest first, so `UUID` wins over `ID`.
  static let acronyms = ["UUID", "MiB", "URI", "URL", "SSH", "MAC", "ID", "IP"]
  static let byWord = Dictionary(acronyms.map { ($0.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })

  /// `memoryMiB` → `memory_mib`, `oldUUID` → `old_uuid`, `formatVersion` → `format_version`.
  /// Keys that start with `_` (Swift's `_0` of an enum's associated value) are left alone.
  public static func snake(_ key: String) -> String {
    guard !key.hasPrefix("_") else { return key }
    var words: [String] = []
    var current = ""
    var i = key.startIndex
    while i < key.endIndex {
      let c = key[i]
      if c.isUppercase {
        if let acronym = acronyms.first(where: { a in
          guard key[i...].hasPrefix(a) else { return false }
          let end = key.index(i, offsetBy: a.count)
          return end == key.endIndex || !key[end].isLowercase
        }) {
          if !current.isEmpty { words.append(current) }
          words.append(acronym.lowercased())
          current = ""
          i = key.index(i, offsetBy: acronym.count)
          continue
        }
        if !current.isEmpty { words.append(current) }
        current = c.lowercased()
      } else {
        current.append(c)
      }
      i = key.index(after: i)
    }
    if !current.isEmpty { words.append(current) }
    return words.joined(separator: "_")
  }

  /// The inverse of `snake`: `old_uuid` → `oldUUID`.
  public static func camel(_ key: String) -> String {
    guard !key.hasPrefix("_") else { return key }
    let words = key.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
    guard let first = words.first else { return key }
    return first + words.dropFirst().map { byWord[$0] ?? ($0.prefix(1).uppercased() + $0.dropFirst()) }.joined()
  }

  struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  /// Sorted keys, so the same value is the same bytes (diffable artifacts).
  public static func encoder(pretty: Bool = false) -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .custom { path in Key(snake(path.last?.stringValue ?? "")) }
    return encoder
  }

  public static func decoder() -> JSONDecoder {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .custom { path in Key(camel(path.last?.stringValue ?? "")) }
    return decoder
  }

  /// A value as a JSON object (for documents that add fields of their own around it).
  public static func object<T: Encodable>(_ value: T) throws -> Any {
    try JSONSerialization.jsonObject(with: encoder().encode(value))
  }
}
