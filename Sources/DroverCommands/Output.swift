import Foundation

/// Writes to stdout/stderr. The only module that prints is this one.
enum Output {
  static func out(_ text: String, terminator: String = "\n") {
    write(STDOUT_FILENO, text + terminator)
  }

  /// Writes all of `text`, or gives up quietly when the reader is gone (`drover … | head`): the
  /// work goes on — a heal or an apply is never cut short because nobody reads its output.
  static func write(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { return }
      bytes = bytes.dropFirst(n)
    }
  }

  /// One compact JSON object per line, for streams of events.
  static func jsonLine(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    out(String(decoding: data, as: UTF8.self))
  }

  static func err(_ text: String) {
    write(STDERR_FILENO, text + "\n")
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
