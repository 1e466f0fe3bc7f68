import ArgumentParser
import DroverBasics
import DroverSpec
import Foundation

/// `drover validate`: checks pool and image specs without touching any host.
struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract: "Check pool and image specs and report every problem.",
    discussion: "Opens no libvirt connection. Exits 1 when any error is found.")

  @Argument(help: "Spec files or folders. Folders named images/ hold recipes.")
  var paths: [String] = ["pools", "images"]

  @Option(help: "Output format: human or json.")
  var format: DiagnosticFormat = .human

  @Flag(help: "Never colour the output.")
  var noColor = false

  func run() throws {
    let machine = try MachineConfig.load(format: format, noColor: noColor)
    // drover.yaml of this folder, if any: its host entries are what pool files may name.
    let (project, projectProblems, projectSources) = ProjectFileLoader.read(dir: ".")
    let (specSources, readProblems) = SpecFiles.read(paths)
    let (set, problems) = SpecLoader.load(
      specSources, machine: machine, projectFolder: FileManager.default.currentDirectoryPath, hosts: project?.hosts ?? [], defaultWindow: project?.window)
    let diagnostics = projectProblems + readProblems + problems
    let sources = projectSources + specSources
    if diagnostics.hasErrors { throw CommandFailure(diagnostics, sources: sources) }
    Report.diagnostics(diagnostics, sources: sources, format: format, noColor: noColor)
    if format == .human {
      Output.out("ok: \(set.pools.count) pool(s), \(set.recipes.count) image recipe(s)")
    }
  }
}

enum DiagnosticFormat: String, ExpressibleByArgument, CaseIterable {
  case human, json
}

/// Shared reporting of diagnostics for every command.
public enum Report {
  static func diagnostics(_ diagnostics: [Diagnostic], sources: [SpecSource], format: DiagnosticFormat, noColor: Bool) {
    switch format {
    case .json:
      let errors = diagnostics.filter { $0.severity == .error }.count
      // One line: the same document is also an event of `apply --json`'s stream.
      Output.jsonLine([
        "format_version": "1.0", "event": "diagnostics", "valid": errors == 0, "error_count": errors,
        "warning_count": diagnostics.count - errors,
        "diagnostics": diagnostics.map(DiagnosticRenderer.jsonObject),
      ])
    case .human:
      let text = humanText(diagnostics, sources: sources, color: Output.useColor(disabled: noColor))
      if !text.isEmpty { Output.err(text) }
    }
  }

  /// Every diagnostic rendered for people, then a count line; empty when there are none.
  public static func humanText(_ diagnostics: [Diagnostic], sources: [SpecSource], color: Bool) -> String {
    let renderer = DiagnosticRenderer(
      color: color, sources: Dictionary(sources.map { ($0.path, $0.bytes) }, uniquingKeysWith: { a, _ in a }))
    var lines = diagnostics.map(renderer.human)
    let errors = diagnostics.filter { $0.severity == .error }.count
    if errors > 0 { lines.append("\(errors) error\(errors == 1 ? "" : "s") found") }
    return lines.joined(separator: "\n")
  }
}
