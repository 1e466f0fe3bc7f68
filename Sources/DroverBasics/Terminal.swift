import Foundation

/// Text from outside (a guest's console, a name on the command line) made safe for a terminal:
/// control characters become `?`, so nothing can inject escape sequences.
public enum Terminal {
  public static func printable(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control && $0 != "\t" ? "?" : $0 }))
  }

  /// As `printable`, but line breaks stay: for messages that may span lines (a hint, a hook's
  /// output) whose text may come from outside.
  public static func printableLines(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control && $0 != "\t" && $0 != "\n" ? "?" : $0 }))
  }

  /// Whether the text holds any control character (C0, DEL or C1; a tab too): refused in names,
  /// labels and paths that come from specs.
  public static func hasControlCharacters(_ text: String) -> Bool {
    text.unicodeScalars.contains { $0.properties.generalCategory == .control }
  }

  /// The text with every control character shown as an escape (`\u{1B}`): for a diagnostic
  /// that must say exactly what was refused without letting it reach the terminal.
  public static func escaped(_ text: String) -> String {
    text.unicodeScalars.map { s in
      s.properties.generalCategory == .control ? "\\u{" + String(format: "%02X", s.value) + "}" : String(s)
    }.joined()
  }
}
