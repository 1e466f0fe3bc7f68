import DroverBasics
import Foundation

/// Renders diagnostics for people (with the source line and a caret) or as JSON objects.
///
/// The one place where diagnostics become text: every command reports through it.
public struct DiagnosticRenderer {
  public var color: Bool
  /// Source text per file, for the quoted line under each diagnostic.
  public var sources: [String: [Substring]] = [:]

  public init(color: Bool, sources: [String: [UInt8]] = [:]) {
    self.color = color
    for (file, bytes) in sources {
      self.sources[file] = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }
  }

  public func human(_ raw: Diagnostic) -> String {
    // Messages quote what arrived (plan files, records, hook output): no escape of theirs
    // reaches the terminal.
    var diagnostic = raw
    diagnostic.message = Terminal.printableLines(raw.message)
    diagnostic.subject = raw.subject.map(Terminal.printableLines)
    diagnostic.hint = raw.hint.map(Terminal.printableLines)
    let label = diagnostic.severity.rawValue
    let coloredLabel = color ? "\(diagnostic.severity == .error ? "\u{1B}[1;31m" : "\u{1B}[1;33m")\(label)\u{1B}[0m" : label
    var lines: [String] = []
    if let loc = diagnostic.location {
      lines.append("\(loc.file):\(loc.start.line):\(loc.start.column): \(coloredLabel): \(diagnostic.message)")
      if let text = sources[loc.file], loc.start.line - 1 < text.count, loc.start.line >= 1 {
        let line = Self.printable(text[loc.start.line - 1])
        let shown = line.unicodeScalars.count > 160 ? String(String.UnicodeScalarView(line.unicodeScalars.prefix(160))) + "…" : line
        let gutter = String(repeating: " ", count: String(loc.start.line).count)
        lines.append(" \(loc.start.line) | \(shown)")
        let caretPad = String(shown.unicodeScalars.prefix(max(0, loc.start.column - 1)).map { $0 == "\t" ? "\t" : " " })
        lines.append(" \(gutter) | \(caretPad)^")
      }
    } else if let subject = diagnostic.subject {
      lines.append("\(coloredLabel): \(subject): \(diagnostic.message)")
    } else {
      lines.append("\(coloredLabel): \(diagnostic.message)")
    }
    if let hint = diagnostic.hint { lines.append("hint: \(hint)") }
    return lines.joined(separator: "\n")
  }

  /// The source line with control characters (NUL, CR, ESC…) shown as U+FFFD, so a quoted line
  /// can never move the cursor or hide text on the user's terminal.
  static func printable(_ line: Substring) -> String {
    String(String.UnicodeScalarView(line.unicodeScalars.map { s in
      (s.value < 0x20 && s != "\t") || s.value == 0x7F ? "\u{FFFD}" : s
    }))
  }

  /// Terraform-shaped JSON: severity, code, summary, detail, address, range.
  public static func jsonObject(_ d: Diagnostic) -> [String: Any] {
    var object: [String: Any] = ["severity": d.severity.rawValue, "code": d.code, "summary": d.message]
    if let hint = d.hint { object["detail"] = hint }
    if let subject = d.subject { object["address"] = subject }
    if let loc = d.location {
      object["range"] = [
        "filename": loc.file,
        "start": ["line": loc.start.line, "column": loc.start.column, "byte": loc.start.byte],
        "end": ["line": loc.end.line, "column": loc.end.column, "byte": loc.end.byte],
      ]
    }
    return object
  }
}
