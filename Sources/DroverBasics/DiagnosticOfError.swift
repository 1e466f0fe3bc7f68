import Foundation

/// The one conversion from any error to diagnostics (#34): every layer that catches an error and
/// must say what it was comes here, so a Foundation error is never shown raw and the fallback
/// wording exists once.
extension Diagnostic {
  /// What `error` says of itself; a Foundation file error as `io.file` with its path and reason;
  /// any other error under `code` (about `subject`).
  public static func list(of error: any Error, code: String, subject: String? = nil) -> [Diagnostic] {
    if let convertible = error as? DiagnosticConvertible { return convertible.diagnostics }
    if let cocoa = error as? CocoaError {
      let path = (cocoa.userInfo[NSFilePathErrorKey] as? String) ?? cocoa.filePath ?? subject ?? "a file"
      let reason = (cocoa.userInfo[NSUnderlyingErrorKey] as? POSIXError).map { String(cString: strerror($0.code.rawValue)) } ?? cocoa.localizedDescription
      let writing = cocoa.code.rawValue >= 512 && cocoa.code.rawValue < 1024
      return [.error("io.file", "cannot \(writing ? "write" : "read") \(path): \(reason)", subject: path, hint: "check the path and its permissions")]
    }
    if let posix = error as? POSIXError {
      return [.error("io", String(cString: strerror(posix.code.rawValue)), subject: subject, hint: "check the paths and permissions Drover was given")]
    }
    if type(of: error) == NSError.self {
      return [.error("io", (error as NSError).localizedDescription, subject: subject, hint: "check the paths and permissions Drover was given")]
    }
    return [.error(code, "\(error)", subject: subject)]
  }

  /// `error` as one diagnostic: its first.
  public static func first(of error: any Error, code: String, subject: String? = nil) -> Diagnostic {
    list(of: error, code: code, subject: subject).first ?? .error(code, "\(error)", subject: subject)
  }
}
