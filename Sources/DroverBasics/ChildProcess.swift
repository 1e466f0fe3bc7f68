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
    /// When set, standard error goes to this file instead of `output`.
    public var errorOutput: String?
    /// Working directory of the child (default: this process's).
    public var directory: String?
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
    // Nothing of Drover's but the three standard streams reaches a child: a hook or check that
    // outlives a killed Drover must not keep its sockets open (a state database session would
    // keep holding that Drover's locks) nor its other files.
    ChildProcess.closeFrom(3, &actions)
    posix_spawn_file_actions_addopen(&actions, 0, options.stdin, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, options.output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if let errorOutput = options.errorOutput {
      posix_spawn_file_actions_addopen(&actions, 2, errorOutput, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    } else {
      posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    // posix_spawn has no portable chdir action visible to Swift: coreutils' `env -C` does it.
    let argv = options.directory.map { ["/usr/bin/env", "-C", $0] + argv } ?? argv
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
    // The state database's password is Drover's, never a hook's or a check's.
    let env = ProcessInfo.processInfo.environment.filter { !Self.withheld.contains($0.key) }.merging(options.environment) { $1 }
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

  /// How a child run by `run` ended.
  public struct Finished: Sendable {
    /// The exit code (128 + the signal if killed; 124 after a timeout, as `timeout(1)` reports it).
    public var status: Int32
    public var output: String
    /// Standard error, when it was asked for separately (else it is in `output`).
    public var errors: String
    public var timedOut: Bool
  }

  /// Runs `argv` to its end or its deadline, output captured in files (never pipes: a child that
  /// leaves a background process holding them cannot make this wait). At the deadline its process
  /// group gets SIGTERM, then SIGKILL a second later. Every wait for a child in Drover is this one,
  /// and each such child dies with Drover (`supervised`).
  public static func run(
    _ argv: [String], environment: [String: String] = [:], directory: String? = nil, separateErrors: Bool = false, timeout: Double,
    outputLimit: Int = Int.max
  ) -> Result<Finished, POSIXError> {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("drover-child-\(getpid())-\(UUID().uuidString)").path
    let outputPath = base + ".out", errorPath = base + ".err"
    defer {
      try? FileManager.default.removeItem(atPath: outputPath)
      try? FileManager.default.removeItem(atPath: errorPath)
    }
    let options = Options(environment: environment, output: outputPath, newProcessGroup: true)
    var withFiles = options
    withFiles.errorOutput = separateErrors ? errorPath : nil
    withFiles.directory = directory
    // A missing or non-executable program is a failure to start, as posix_spawn reports it,
    // not an exit code of the supervisor below.
    if let error = unrunnable(argv[0], environment: environment, directory: directory) { return .failure(error) }
    let pid: pid_t
    switch spawn(Self.supervised(argv, timeout: timeout), withFiles) {
    case .success(let started): pid = started
    case .failure(let error): return .failure(error)
    }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    var reaped = false
    while !reaped {
      if waitpid(pid, &status, WNOHANG) == pid { break }
      if Date() >= deadline {
        timedOut = true
        kill(-pid, SIGTERM)
        let grace = Date().addingTimeInterval(1)
        while Date() < grace {
          if waitpid(pid, &status, WNOHANG) == pid {
            reaped = true
            break
          }
          usleep(20_000)
        }
        if !reaped {
          kill(-pid, SIGKILL)
          waitpid(pid, &status, 0)
        }
        break
      }
      usleep(5_000)
    }
    // The end of what it wrote, at most `outputLimit` bytes: a hook (or a node answering over SSH)
    // that prints without end costs a bounded read, and the last lines are the ones that explain a
    // failure. Drover's own tools, whose output is parsed whole, are read whole.
    func read(_ path: String) -> String {
      guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
      defer { try? handle.close() }
      let size = (try? handle.seekToEnd()) ?? 0
      try? handle.seek(toOffset: size > UInt64(outputLimit) ? size - UInt64(outputLimit) : 0)
      return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }
    return .success(
      Finished(
        status: timedOut ? 124 : exitCode(status), output: read(outputPath), errors: separateErrors ? read(errorPath) : "", timedOut: timedOut))
  }

  /// `argv` under a supervisor that outlives no Drover: `setpriv --pdeathsig TERM` makes the
  /// kernel send SIGTERM when the thread that started it (which waits for it) dies — `kill -9`,
  /// the OOM killer — and `timeout` passes that signal to the child's whole process group, sends
  /// SIGKILL a second later, and keeps the child's own deadline (2 s after Drover's, which
  /// normally acts first) with no Drover alive. Without util-linux or coreutils (not on Debian)
  /// the child runs bare.
  static func supervised(_ argv: [String], timeout: Double) -> [String] {
    guard supervisorsPresent else { return argv }
    let seconds = Int(min(max(timeout, 0), 1e8).rounded(.up)) + 2
    return ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--", "/usr/bin/timeout", "-k", "1s", "\(seconds)s"] + argv
  }

  static let supervisorsPresent = access("/usr/bin/setpriv", X_OK) == 0 && access("/usr/bin/timeout", X_OK) == 0

  /// Why `program` could not be started (ENOENT, EACCES), looked up as `execvp` would: on the
  /// child's `PATH` when it has no slash, from `directory` when it is relative.
  static func unrunnable(_ program: String, environment: [String: String], directory: String?) -> POSIXError? {
    func runnable(_ path: String) -> Int32? {
      var info = stat()
      guard stat(path, &info) == 0 else { return errno }
      if (info.st_mode & S_IFMT) == S_IFDIR { return EACCES }
      return access(path, X_OK) == 0 ? nil : errno
    }
    let candidates: [String]
    if program.isEmpty {
      return POSIXError(.ENOENT)
    } else if program.contains("/") {
      if let directory, !program.hasPrefix("/") {
        candidates = [directory + "/" + program]
      } else {
        candidates = [program]
      }
    } else {
      let path = environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
      candidates = path.split(separator: ":", omittingEmptySubsequences: false).map { ($0.isEmpty ? "." : String($0)) + "/" + program }
    }
    var last: Int32 = ENOENT
    for candidate in candidates {
      guard let code = runnable(candidate) else { return nil }
      if code == EACCES || last != EACCES { last = code }
    }
    return POSIXError(POSIXErrorCode(rawValue: last) ?? .ENOENT)
  }

  /// What a hook's or check's output is cut to (its end is kept).
  public static let hookOutputLimit = 4 << 20

  /// A `waitpid` status as a shell would report it: the exit code, or 128 + the signal.
  public static func exitCode(_ status: Int32) -> Int32 {
    (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
  }
}

extension ChildProcess {
  /// Variables of Drover's own that no child gets.
  static let withheld: Set<String> = ["DROVER_STATE_PASSWORD", "PGPASSWORD", "DROVER_PROJECT_KEY"]

  /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), looked up at run time: Swift's
  /// Glibc module does not show it.
  static func closeFrom(_ fd: Int32, _ actions: inout posix_spawn_file_actions_t) {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
    let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
    _ = addCloseFrom(&actions, fd)
  }
}
