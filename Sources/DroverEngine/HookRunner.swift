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
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Its own process group, so a timeout kills the hook and everything it started.
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      cArgs.forEach { free($0) }
      cEnv.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
    guard rc == 0 else {
      return Result(status: 127, output: "cannot run \(argv[0]): \(String(cString: strerror(rc)))", timedOut: false)
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
    let exit: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return Result(status: timedOut ? 124 : exit, output: output, timedOut: timedOut)
  }
}
