/// Escaping and unescaping for the XML Drover writes.
///
/// Why by hand and never by interpolation: names, labels and values can hold `<`, `&`, quotes,
/// `]]>` or newlines. Every value goes through `attribute(_:)`, which escapes everything that
/// could end an attribute or start markup, so user text can never add an element.
enum XMLText {
  static func attribute(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for scalar in s.unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      case "\n": out += "&#10;"
      case "\r": out += "&#13;"
      case "\t": out += "&#9;"
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  /// Element text: same rules (quotes are harmless there but escaping them is too).
  static func text(_ s: String) -> String { attribute(s) }

  static func unescape(_ s: Substring) -> String {
    guard s.utf8.contains(UInt8(ascii: "&")) else { return String(s) }
    var out = ""
    var i = s.startIndex
    while i < s.endIndex {
      if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
        let entity = s[s.index(after: i)..<semi]
        var replacement: String?
        switch entity {
        case "amp": replacement = "&"
        case "lt": replacement = "<"
        case "gt": replacement = ">"
        case "quot": replacement = "\""
        case "apos": replacement = "'"
        default:
          if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
            replacement = String(u)
          } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
            replacement = String(u)
          }
        }
        if let replacement {
          out += replacement
          i = s.index(after: semi)
          continue
        }
      }
      out.append(s[i])
      i = s.index(after: i)
    }
    return out
  }

  /// The start tags of `xml` in order, each as (qualified name, attributes). Enough for the
  /// small metadata element Drover writes; not a general XML parser.
  ///
  /// Scans UTF-8 bytes: `plan` parses one of these per domain, and Character-based scanning was
  /// the largest CPU cost of a plan at 1,000 nodes.
  static func startTags(_ xml: String) -> [XMLTag] {
    var tags: [XMLTag] = []
    var xml = xml
    return xml.withUTF8 { b -> [XMLTag] in
      let n = b.count
      var i = 0
      func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D }
      func text(_ from: Int, _ to: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[from..<to]), as: UTF8.self) }
      while i < n {
        guard b[i] == UInt8(ascii: "<") else { i += 1; continue }
        i += 1
        guard i < n, b[i] != UInt8(ascii: "/"), b[i] != UInt8(ascii: "?"), b[i] != UInt8(ascii: "!") else { continue }
        let nameStart = i
        while i < n, !isSpace(b[i]), b[i] != UInt8(ascii: "/"), b[i] != UInt8(ascii: ">") { i += 1 }
        let name = text(nameStart, i)
        var attributes: [(key: String, value: String)] = []
        while i < n {
          while i < n, isSpace(b[i]) { i += 1 }
          guard i < n, b[i] != UInt8(ascii: ">"), b[i] != UInt8(ascii: "/") else { break }
          let keyStart = i
          while i < n, b[i] != UInt8(ascii: "="), !isSpace(b[i]), b[i] != UInt8(ascii: ">") { i += 1 }
          let key = text(keyStart, i)
          while i < n, isSpace(b[i]) || b[i] == UInt8(ascii: "=") { i += 1 }
          guard i < n, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") else { break }
          let quote = b[i]
          i += 1
          let valueStart = i
          while i < n, b[i] != quote { i += 1 }
          let raw = text(valueStart, i)
          attributes.append((key, raw.utf8.contains(UInt8(ascii: "&")) ? unescape(Substring(raw)) : raw))
          i += 1
        }
        tags.append(XMLTag(name: name, attributes: attributes))
      }
      return tags
    }
  }
}

/// One start tag: its qualified name and its attributes in document order. A handful of
/// attributes per tag, so a list searched in order is cheaper than hashing them into a dictionary.
struct XMLTag {
  var name: String
  var attributes: [(key: String, value: String)]

  /// The value of attribute `key` (the first, if repeated).
  subscript(key: String) -> String? { attributes.first { $0.key == key }?.value }
}

extension String {
  func trimmingCharacters() -> String {
    String(drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
  }
}
