import Foundation

/// Starts a child process with `posix_spawn`: the one place Drover creates processes that it
/// then waits for or stops by pid (hooks, local build VMs, benchmark contenders).
///
/// Why not Foundation's `Process`: its run-loop based wait added ~20 ms per child here, and a
/// hook that leaves a background process holding a pipe would keep it waiting. Output goes to a
/// file instead. The child gets an empty signal mask and default handlers: a spawning worker
/// thread may block SIGTERM, and a child inheriting that would ignore being stopped.
public enum ChildProcess {
  public struct Options {
    /// Added to (and overriding) this process's environment.
    public var environment: [String: String] = [:]
    /// File read as standard input (default `/dev/null`).
    public var stdin: String = "/dev/null"
    /// File that receives standard output and error, truncated (default `/dev/null`).
    public var output: String = "/dev/null"
    /// Its own process group, so a timeout can stop it and everything it started.
    public var newProcessGroup = false
    /// Look `argv[0]` up on `PATH` when it has no slash.
    public var searchPath = true

    public init(
      environment: [String: String] = [:], stdin: String = "/dev/null", output: String = "/dev/null", newProcessGroup: Bool = false,
      searchPath: Bool = true
    ) {
      self.environment = environment
      self.stdin = stdin
      self.output = output
      self.newProcessGroup = newProcessGroup
      self.searchPath = searchPath
    }
  }

  /// Starts `argv`; returns its pid, or the `errno` of a failed start.
  public static func spawn(_ argv: [String], _ options: Options = Options()) -> Result<pid_t, POSIXError> {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, options.stdin, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, options.output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t(), defaults = sigset_t()
    sigemptyset(&none)
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if options.newProcessGroup {
      flags |= POSIX_SPAWN_SETPGROUP
      posix_spawnattr_setpgroup(&attributes, 0)
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))
    let env = ProcessInfo.processInfo.environment.merging(options.environment) { $1 }
    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      cArgs.forEach { free($0) }
      cEnv.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc: Int32
    if options.searchPath {
      rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
    } else {
      rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
    }
    guard rc == 0 else { return .failure(POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL)) }
    return .success(pid)
  }

  /// A `waitpid` status as a shell would report it: the exit code, or 128 + the signal.
  public static func exitCode(_ status: Int32) -> Int32 {
    (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
  }
}
