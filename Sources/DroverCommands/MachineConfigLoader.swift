import DroverBasics
import DroverModel
import DroverSpec
import Foundation
import Synchronization

/// Reads this machine's configuration: `$DROVER_CONFIG` or `/etc/drover/config.yaml` (missing:
/// defaults), then `$DROVER_ALLOW_PATHS` (colon-separated absolute paths) on top.
///
/// Why the file must belong to root or to Drover's user and be writable by nobody else: it
/// decides which host files specs may name and which keys a host URI uses, so whoever can
/// write it can widen both.
enum MachineConfigLoader {
  static func read(environment: [String: String] = ProcessInfo.processInfo.environment) -> (MachineSettings, [Diagnostic], [SpecSource]) {
    let path = environment["DROVER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? MachineSettings.defaultPath
    var settings = MachineSettings()
    var diagnostics: [Diagnostic] = []
    var sources: [SpecSource] = []
    var st = stat()
    if lstat(path, &st) == 0 {
      if let why = unsafeReason(st) {
        diagnostics.append(
          .error(
            "machine.config-unsafe", "refusing this machine's configuration: \(why)", subject: path,
            hint: "chown root \(path) && chmod go-w \(path)"))
      } else {
        let (read, readProblems) = SpecFiles.read([path])
        diagnostics += readProblems
        if let source = read.first {
          let machine = SpecSource(path: source.path, kind: .project, bytes: source.bytes)
          let (decoded, problems) = MachineConfigFile.decode(machine)
          settings = decoded
          diagnostics += problems
          sources.append(machine)
        }
      }
    }
    for entry in (environment["DROVER_ALLOW_PATHS"] ?? "").split(separator: ":").map(String.init) {
      if let why = MachineConfigFile.absolutePathProblem(entry) ?? (HostPathPolicy.normalised(entry) == "/" ? "must not be '/'" : nil) {
        diagnostics.append(.error("machine.env", "DROVER_ALLOW_PATHS entry '\(Terminal.escaped(entry))' \(why)", subject: "DROVER_ALLOW_PATHS"))
      } else {
        settings.allowedRoots.append(HostPathPolicy.normalised(entry))
      }
    }
    return (settings, diagnostics, sources)
  }

  /// Why a configuration file with this status may not be trusted, or nil.
  static func unsafeReason(_ st: stat) -> String? {
    guard (st.st_mode & S_IFMT) == S_IFREG else { return "it is not a regular file (a symlink is never followed)" }
    guard st.st_uid == 0 || st.st_uid == geteuid() else { return "it belongs to uid \(st.st_uid), neither root nor Drover's user" }
    guard st.st_mode & 0o022 == 0 else { return "others can write it (mode \(String(st.st_mode & 0o777, radix: 8)))" }
    return nil
  }
}

/// This machine's configuration, read by the command that needs it (never held by the process).
enum MachineConfig {
  /// Reads it: its errors are thrown, its warnings said here.
  static func load(format: DiagnosticFormat, noColor: Bool) throws(CommandFailure) -> MachineSettings {
    let (settings, problems, sources) = MachineConfigLoader.read()
    if problems.hasErrors { throw CommandFailure(problems, sources: sources) }
    if !problems.isEmpty { Report.diagnostics(problems, sources: sources, format: format, noColor: noColor) }
    return settings
  }
}
