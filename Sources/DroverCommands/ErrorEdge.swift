import ArgumentParser
import DroverBasics
import DroverSpec
import Foundation

/// A command that did not do what it was asked (#34: the one failure path). Commands throw it,
/// never render a failure themselves: `ErrorEdge` renders it once, human or JSON.
struct CommandFailure: DiagnosticConvertible {
  var diagnostics: [Diagnostic]
  /// The spec files the diagnostics point into, for their source lines.
  var sources: [SpecSource] = []
  /// Lines said to people after the diagnostics ("No action was taken."); never in JSON.
  var trailer: [String] = []
  /// The exit status: 1, or 130 for an interrupted bake.
  var status: Int32 = 1
  /// The command's own output document already holds the diagnostics (`plan --json`, the JSON
  /// of `status` and `drift`): the edge only sets the exit status, and never prints a second
  /// document after the first.
  var inDocument = false

  init(_ diagnostics: [Diagnostic], sources: [SpecSource] = [], trailer: [String] = [], status: Int32 = 1, inDocument: Bool = false) {
    self.diagnostics = diagnostics
    self.sources = sources
    self.trailer = trailer
    self.status = status
    self.inDocument = inDocument
  }
}

/// The one place an error leaves Drover: every error a command throws is rendered here, once, as
/// diagnostics (human or JSON), never as a raw value dump.
enum ErrorEdge {
  /// The diagnostics for any error that is not ArgumentParser's own (usage errors, exit codes).
  static func diagnostics(for error: Error) -> [Diagnostic]? {
    if error is ExitCode || error is CleanExit || error is ValidationError { return nil }
    if let thrown = thrownInValidate(error) { return thrown.diagnostics }
    if !(error is DiagnosticConvertible), String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") { return nil }
    return Diagnostic.list(of: error, code: "internal").map { diagnostic in
      var diagnostic = diagnostic
      if diagnostic.code == "internal" && diagnostic.hint == nil { diagnostic.hint = "this is a bug in Drover; please report it with the command you ran" }
      return diagnostic
    }
  }

  /// A failure an option group's `validate()` threw (the project file, the machine's
  /// configuration): ArgumentParser wraps it in its own error, whose type is not public.
  static func thrownInValidate(_ error: Error) -> DiagnosticConvertible? {
    guard !(error is DiagnosticConvertible), String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") else { return nil }
    var level: [Any] = [error]
    for _ in 0..<4 {
      let children = level.flatMap { Mirror(reflecting: $0).children.map(\.value) }
      if let found = children.lazy.compactMap({ $0 as? DiagnosticConvertible }).first { return found }
      level = children
    }
    return nil
  }

  static func wantsJSON(_ arguments: [String]) -> Bool {
    arguments.contains("--json") || zip(arguments, arguments.dropFirst()).contains { $0 == "--format" && $1 == "json" }
      || arguments.contains("--format=json")
  }

  /// Renders `error` as the command line asked (JSON or human) and returns the exit status;
  /// nil for ArgumentParser's own errors, which it renders itself.
  static func render(_ error: Error, arguments: [String]) -> Int32? {
    guard let diagnostics = diagnostics(for: error) else { return nil }
    let failure = error as? CommandFailure ?? thrownInValidate(error) as? CommandFailure
    let json = wantsJSON(arguments)
    if failure?.inDocument != true && !diagnostics.isEmpty {
      Report.diagnostics(diagnostics, sources: failure?.sources ?? [], format: json ? .json : .human, noColor: arguments.contains("--no-color"))
      if !json { for line in failure?.trailer ?? [] { Output.err(line) } }
    }
    return failure?.status ?? 1
  }
}

extension DroverCommand {
  /// Parses and runs the command; errors go through `ErrorEdge` (ArgumentParser keeps usage
  /// errors, help and exit codes).
  public static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      guard let status = ErrorEdge.render(error, arguments: Array(CommandLine.arguments.dropFirst())) else { exit(withError: error) }
      Foundation.exit(status)
    }
  }
}
