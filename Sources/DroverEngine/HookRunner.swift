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
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("drover-hook-\(getpid())-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    // Its own process group, so a timeout kills the hook and everything it started.
    let pid: pid_t
    switch ChildProcess.spawn(argv, ChildProcess.Options(environment: environment, output: outputPath, newProcessGroup: true)) {
    case .success(let started): pid = started
    case .failure(let error):
      return Result(status: 127, output: "cannot run \(argv[0]): \(String(cString: strerror(error.code.rawValue)))", timedOut: false)
    }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    var reaped = false
    while !reaped {
      if waitpid(pid, &status, WNOHANG) == pid { reaped = true; break }
      if Date() >= deadline {
        timedOut = true
        kill(-pid, SIGTERM)
        let grace = Date().addingTimeInterval(1)
        while Date() < grace { if waitpid(pid, &status, WNOHANG) == pid { reaped = true; break }; usleep(20_000) }
        if !reaped {
          kill(-pid, SIGKILL)
          waitpid(pid, &status, 0)
          reaped = true
        }
        break
      }
      usleep(10_000)
    }
    let output = String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self)
    return Result(status: timedOut ? 124 : ChildProcess.exitCode(status), output: output, timedOut: timedOut)
  }
}
