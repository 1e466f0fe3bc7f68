/// Text from outside (a guest's console, a name on the command line) made safe for a terminal:
/// control characters become `?`, so nothing can inject escape sequences.
public enum Terminal {
  public static func printable(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control && $0 != "\t" ? "?" : $0 }))
  }
}
