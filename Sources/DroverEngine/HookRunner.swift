import DroverBasics
import Foundation

/// Runs a user hook (drain command, health command, kubectl, scontrol) with a hard timeout.
///
/// A hook that hangs is killed (SIGTERM, then SIGKILL a second later, its whole process group) at
/// its timeout: no wait in Drover is unbounded. Output goes to a temporary file, not a pipe, and
/// the wait is on the hook's exit: a hook that leaves a background process holding its stdout (a
/// daemon it started) cannot make Drover wait for that process.
public enum HookRunner {
  public struct Result: Sendable {
    public var status: Int32
    public var output: String
    public var timedOut: Bool
  }

  public static func run(_ argv: [String], environment: [String: String] = [:], timeout: Double) -> Result {
    switch ChildProcess.run(argv, environment: environment, timeout: timeout, outputLimit: ChildProcess.hookOutputLimit) {
    case .success(let finished):
      StepOutput.record(finished.output)
      return Result(status: finished.status, output: finished.output, timedOut: finished.timedOut)
    case .failure(let error):
      return Result(status: 127, output: "cannot run \(argv[0]): \(String(cString: strerror(error.code.rawValue)))", timedOut: false)
    }
  }
}
