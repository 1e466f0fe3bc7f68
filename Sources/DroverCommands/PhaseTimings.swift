import Foundation

/// Opt-in wall-clock phases of one command, printed to stderr at exit: `DROVER_TIMINGS=1`.
///
/// Why: benchmarks compare whole processes against baselines; when a ratio moves, this says
/// which phase (start-up, specs, connect, observe, plan, output) moved, without a profiler.
enum PhaseTimings {
  nonisolated(unsafe) private static var last = DispatchTime.now().uptimeNanoseconds
  nonisolated(unsafe) private static var phases: [(String, UInt64)] = []
  static let enabled = ProcessInfo.processInfo.environment["DROVER_TIMINGS"] == "1"

  /// Ends the current phase under `name` (commands run on one thread; phases are marked there).
  static func mark(_ name: String) {
    guard enabled else { return }
    // `last` is initialised lazily, on first use: in a command that never called `start` that
    // is after `now` was read (a subtraction that trapped).
    let previous = last
    let now = DispatchTime.now().uptimeNanoseconds
    phases.append((name, now - min(now, previous)))
    last = now
  }

  /// Starts timing (at the top of a command's `run`; process start-up is measured by the
  /// benchmark as `drover --version`).
  static func start() {
    guard enabled else { return }
    last = DispatchTime.now().uptimeNanoseconds
  }

  /// Prints the phases.
  static func report() {
    guard enabled, !phases.isEmpty else { return }
    let lines = phases.map { String(format: "  %-10@ %7.1f ms", $0.0 as NSString, Double($0.1) / 1e6) }
    FileHandle.standardError.write(Data(("timings:\n" + lines.joined(separator: "\n") + "\n").utf8))
  }
}
