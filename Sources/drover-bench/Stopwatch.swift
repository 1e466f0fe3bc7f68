import Foundation

/// Wall-clock timing of repeated runs, reported as medians.
enum Stopwatch {
  static func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  }

  static func median(runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<runs { samples.append(try seconds(body)) }
    samples.sort()
    return samples[samples.count / 2]
  }

  static func format(_ s: Double) -> String {
    s >= 1 ? String(format: "%.2f s", s) : s >= 0.001 ? String(format: "%.1f ms", s * 1000) : String(format: "%.0f µs", s * 1e6)
  }
}

/// Runs a command and returns its exit status (output discarded).
///
/// `posix_spawn` + `waitpid` rather than Foundation's `Process`, whose run-loop based wait adds
/// ~20 ms per child here and would be measured as if it were the child's own time.
@discardableResult
func runProcess(_ path: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:], stdin: String? = nil) throws -> Int32 {
  try spawn(path, arguments, cwd: cwd, environment: environment, stdin: stdin).status
}

/// Runs a command and returns its peak resident memory in KiB.
func runMeasured(_ path: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:]) throws -> Int {
  try spawn(path, arguments, cwd: cwd, environment: environment, stdin: nil).maxRSSKiB
}

func spawn(_ path: String, _ arguments: [String], cwd: String?, environment: [String: String], stdin: String?) throws -> (status: Int32, maxRSSKiB: Int) {
  var env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  if let cwd { env["PWD"] = cwd }
  let argv = [path] + arguments
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
  // No posix_spawn chdir action in this libc's headers: the benchmark is single-threaded, so
  // change the parent's directory around the spawn.
  let previous = FileManager.default.currentDirectoryPath
  if let cwd { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
  defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
  let cArgs = argv.map { strdup($0) } + [nil]
  let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
  defer {
    cArgs.forEach { free($0) }
    cEnv.forEach { free($0) }
  }
  var pid: pid_t = 0
  let rc = posix_spawn(&pid, path, &actions, nil, cArgs, cEnv)
  guard rc == 0 else { throw BenchError("cannot run \(path): \(String(cString: strerror(rc)))") }
  var status: Int32 = 0
  var usage = rusage()
  wait4(pid, &status, 0, &usage)
  return ((status >> 8) & 0xFF, usage.ru_maxrss)
}
