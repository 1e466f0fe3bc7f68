import Foundation

/// Runs a user hook (drain command, health command, kubectl, scontrol) with a hard timeout.
///
/// A hook that hangs is killed (SIGTERM, then SIGKILL a second later, its whole process group) at
/// its timeout: no wait in Drover is unbounded.
public enum HookRunner {
  public struct Result: Sendable {
    public var status: Int32
    public var output: String
    public var timedOut: Bool
  }

  public static func run(_ argv: [String], environment: [String: String] = [:], timeout: Double) -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch {
      return Result(status: 127, output: "cannot run \(argv[0]): \(error)", timedOut: false)
    }
    let pid = process.processIdentifier
    setpgid(pid, pid)
    let done = DispatchSemaphore(value: 0)
    final class Box: @unchecked Sendable { var data = Data() }
    let box = Box()
    DispatchQueue.global().async {
      box.data = pipe.fileHandleForReading.readDataToEndOfFile()
      done.signal()
    }
    var timedOut = false
    if done.wait(timeout: .now() + timeout) == .timedOut {
      timedOut = true
      kill(-pid, SIGTERM)
      kill(pid, SIGTERM)
      if done.wait(timeout: .now() + 1) == .timedOut {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        try? pipe.fileHandleForReading.close()
      }
    }
    process.waitUntilExit()
    return Result(
      status: timedOut ? 124 : process.terminationStatus, output: String(decoding: box.data, as: UTF8.self), timedOut: timedOut)
  }
}
