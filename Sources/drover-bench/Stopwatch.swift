import DroverBasics
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
  try awaitProcess(startProcess(path, arguments, cwd: cwd, environment: environment, stdin: stdin))
}

/// Starts a command without waiting for it (for contenders that run several processes at once).
func startProcess(_ path: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:], stdin: String? = nil) throws -> pid_t {
  // ChildProcess has no working-directory option (no posix_spawn chdir action in this libc's
  // headers): the benchmark is single-threaded, so change the parent's directory around the spawn.
  var env = environment
  if let cwd { env["PWD"] = cwd }
  let previous = FileManager.default.currentDirectoryPath
  if let cwd { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
  defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
  switch ChildProcess.spawn([path] + arguments, ChildProcess.Options(environment: env, stdin: stdin ?? "/dev/null", searchPath: false)) {
  case .success(let started): return started
  case .failure(let error): throw BenchError("cannot run \(path): \(String(cString: strerror(error.code.rawValue)))")
  }
}

/// Waits for a started command: its exit code and peak resident memory in KiB.
func awaitProcess(_ pid: pid_t) -> (status: Int32, maxRSSKiB: Int) {
  let r = awaitProcessUsage(pid)
  return (r.status, r.maxRSSKiB)
}

/// Waits for a started command: its exit code, peak resident memory in KiB and CPU seconds
/// (user + system, its own: the daemon's work is not in it).
func awaitProcessUsage(_ pid: pid_t) -> (status: Int32, maxRSSKiB: Int, cpuSeconds: Double) {
  var status: Int32 = 0
  var usage = rusage()
  wait4(pid, &status, 0, &usage)
  let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
  return (ChildProcess.exitCode(status), usage.ru_maxrss, cpu)
}

/// The median CPU seconds (user + system) of `runs` runs of a command.
func medianCPU(_ path: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:], runs: Int) throws -> Double {
  var samples: [Double] = []
  for _ in 0..<max(1, runs) {
    samples.append(awaitProcessUsage(try startProcess(path, arguments, cwd: cwd, environment: environment)).cpuSeconds)
  }
  return samples.sorted()[samples.count / 2]
}
