import Foundation

/// Writes to stdout/stderr. The only module that prints is this one.
enum Output {
  static func out(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
  }

  /// One compact JSON object per line, for streams of events.
  static func jsonLine(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    out(String(decoding: data, as: UTF8.self))
  }

  static func err(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
  }

  static func json(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    out(String(decoding: data, as: UTF8.self))
  }

  /// Colour only on a terminal, and never when NO_COLOR is set.
  static func useColor(disabled: Bool) -> Bool {
    !disabled && isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
  }
}
