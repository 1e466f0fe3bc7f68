import ArgumentParser
import DroverBasics
import Foundation

/// The one place an error leaves Drover: every error a command throws is rendered here, once, as
/// diagnostics (human or JSON), never as a raw value dump.
enum ErrorEdge {
  /// The diagnostics for any error that is not ArgumentParser's own (usage errors, exit codes).
  static func diagnostics(for error: Error) -> [Diagnostic]? {
    if let convertible = error as? DiagnosticConvertible { return convertible.diagnostics }
    if error is ExitCode || error is CleanExit || error is ValidationError { return nil }
    if let cocoa = error as? CocoaError {
      let path = (cocoa.userInfo[NSFilePathErrorKey] as? String) ?? cocoa.filePath ?? "a file"
      let reason = (cocoa.underlying as? POSIXError).map { String(cString: strerror($0.code.rawValue)) } ?? cocoa.localizedDescription
      return [.error("io.file", "cannot \(cocoa.isWriteError ? "write" : "read") \(path): \(reason)", subject: path, hint: "check the path and its permissions")]
    }
    if type(of: error) == NSError.self || error is POSIXError {
      return [.error("io", (error as NSError).localizedDescription, hint: "check the paths and permissions Drover was given")]
    }
    if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") { return nil }
    return [.error("internal", "\(error)", hint: "this is a bug in Drover; please report it with the command you ran")]
  }

  static func wantsJSON(_ arguments: [String]) -> Bool {
    arguments.contains("--json") || zip(arguments, arguments.dropFirst()).contains { $0 == "--format" && $1 == "json" }
      || arguments.contains("--format=json")
  }
}

extension CocoaError {
  var isWriteError: Bool { code.rawValue >= 512 && code.rawValue < 1024 }
  var underlying: Error? { userInfo[NSUnderlyingErrorKey] as? Error }
}

extension DroverCommand {
  /// Parses and runs the command; errors go through `ErrorEdge` (ArgumentParser keeps usage
  /// errors, help and exit codes).
  public static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      guard let diagnostics = ErrorEdge.diagnostics(for: error) else { exit(withError: error) }
      let arguments = Array(CommandLine.arguments.dropFirst())
      Report.diagnostics(diagnostics, sources: [], format: ErrorEdge.wantsJSON(arguments) ? .json : .human, noColor: arguments.contains("--no-color"))
      Foundation.exit(1)
    }
  }
}
