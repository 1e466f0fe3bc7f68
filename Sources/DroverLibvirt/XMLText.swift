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
    guard s.contains("&") else { return String(s) }
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
  static func startTags(_ xml: String) -> [(name: String, attributes: [String: String])] {
    var tags: [(String, [String: String])] = []
    var rest = Substring(xml)
    while let open = rest.firstIndex(of: "<") {
      rest = rest[rest.index(after: open)...]
      guard let first = rest.first, first != "/", first != "?", first != "!" else { continue }
      let nameEnd = rest.firstIndex { $0 == " " || $0 == "/" || $0 == ">" || $0 == "\n" || $0 == "\t" } ?? rest.endIndex
      let name = String(rest[..<nameEnd])
      var attributes: [String: String] = [:]
      var cursor = rest[nameEnd...]
      while true {
        cursor = cursor.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let c = cursor.first, c != ">", c != "/" else { break }
        guard let eq = cursor.firstIndex(of: "=") else { break }
        let key = String(cursor[..<eq]).trimmingCharacters()
        var valueStart = cursor.index(after: eq)
        guard valueStart < cursor.endIndex else { break }
        let quote = cursor[valueStart]
        guard quote == "\"" || quote == "'" else { break }
        valueStart = cursor.index(after: valueStart)
        guard let close = cursor[valueStart...].firstIndex(of: quote) else { break }
        attributes[key] = unescape(cursor[valueStart..<close])
        cursor = cursor[cursor.index(after: close)...]
      }
      tags.append((name, attributes))
      rest = cursor
    }
    return tags
  }
}

extension String {
  func trimmingCharacters() -> String {
    String(drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
  }
}
