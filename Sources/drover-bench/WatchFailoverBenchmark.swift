import DroverBasics
import Foundation

/// `state`, part 3 (#41): how long the project's healing is leaderless when its `watch` leader
/// dies (SIGKILL: its database session ends at once) or freezes (SIGSTOP: its lease runs out).
/// Two `drover watch` processes in two checkouts of one project share the PostgreSQL state; the
/// leader is stopped, and the time until the standby says it leads is measured; a new standby is
/// started for the next round. 10 rounds of each (`DROVER_BENCH_FAILOVERS`), lease 3 s
/// (`DROVER_BENCH_LEASE`), medians and the worst.
enum WatchFailoverBenchmark {
  static func run(drover: String, url: String, environment: [String: String], project: String) throws -> [String] {
    let rounds = Int(ProcessInfo.processInfo.environment["DROVER_BENCH_FAILOVERS"] ?? "") ?? 10
    let lease = ProcessInfo.processInfo.environment["DROVER_BENCH_LEASE"] ?? "3s"
    let pool = "wf\(getpid() % 10_000)"
    var checkouts: [ScratchProject] = []
    for side in ["a", "b"] {
      let scratch = try ScratchProject("watch-\(side)")
      try "project: \(project)\nstate: {backend: postgres, url: \"\(url)\", lease: \(lease)}\n".write(
        toFile: scratch.path + "/drover.yaml", atomically: true, encoding: .utf8)
      try "name: \(pool)\nhosts: [\(FleetBenchmark.uri)]\nreplicas: 2\nimage: demo@v1\nremediation: {unhealthy_after: 0s, max_unhealthy: 1}\n"
        .write(toFile: scratch.path + "/pools/p.yaml", atomically: true, encoding: .utf8)
      checkouts.append(scratch)
    }
    var running: [pid_t] = []
    defer {
      for pid in running {
        kill(pid, SIGCONT)
        kill(pid, SIGKILL)
        _ = awaitProcess(pid)
      }
      try? "name: \(pool)\nhosts: [\(FleetBenchmark.uri)]\nreplicas: 0\nimage: demo@v1\n".write(
        toFile: checkouts[0].path + "/pools/p.yaml", atomically: true, encoding: .utf8)
      _ = try? runProcess(drover, ["apply", "--auto-approve"], cwd: checkouts[0].path, environment: environment)
      for c in checkouts { c.remove() }
      try? FileManager.default.removeItem(atPath: "/var/lib/drover/state/\(project)")
    }
    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: checkouts[0].path, environment: environment), "drover apply (watch)")

    var serial = 0
    /// A watch in `checkout`, its JSON lines in a file.
    func start(_ checkout: ScratchProject) throws -> (pid: pid_t, log: String) {
      serial += 1
      let log = checkout.path + "/watch-\(serial).log"
      var env = environment
      env["PWD"] = checkout.path
      let previous = FileManager.default.currentDirectoryPath
      _ = FileManager.default.changeCurrentDirectoryPath(checkout.path)
      defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
      var options = ChildProcess.Options(environment: env, searchPath: false)
      options.output = log
      switch ChildProcess.spawn([drover, "watch", "--interval", "1s", "--json", "--max-failed-passes", "1000"], options) {
      case .success(let pid):
        running.append(pid)
        return (pid, log)
      case .failure(let error): throw BenchError("cannot run drover watch: \(error)")
      }
    }
    func says(_ log: String, _ role: String, within seconds: Double) -> Bool {
      let end = Date().addingTimeInterval(seconds)
      repeat {
        if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("\"role\":\"\(role)\"") { return true }
        Thread.sleep(forTimeInterval: 0.01)
      } while Date() < end
      return false
    }

    var leader = try start(checkouts[0])
    guard says(leader.log, "leader", within: 30) else { throw BenchError("the first watch never led") }
    var side = 1
    var results: [(String, [Double])] = []
    for (name, signal) in [("killed (SIGKILL)", SIGKILL), ("frozen (SIGSTOP)", SIGSTOP)] {
      var times: [Double] = []
      for _ in 0..<rounds {
        let standby = try start(checkouts[side])
        guard says(standby.log, "standby", within: 30) else { throw BenchError("a watch never stood by") }
        let t = Date()
        kill(leader.pid, signal)
        guard says(standby.log, "leader", within: 120) else { throw BenchError("the standby never took the lead") }
        times.append(Date().timeIntervalSince(t))
        // The old leader goes for good (a frozen one is killed too: it would only stand by).
        kill(leader.pid, SIGCONT)
        kill(leader.pid, SIGKILL)
        _ = awaitProcess(leader.pid)
        running.removeAll { $0 == leader.pid }
        leader = standby
        side = 1 - side
      }
      results.append((name, times.sorted()))
    }
    var lines = ["-- watch failover: two drover watch processes, one PostgreSQL state, lease \(lease), standby poll 1 s (\(rounds) rounds each)"]
    for (name, times) in results {
      lines.append(
        String(
          format: "  leader %@: the standby leads after %.2f s median, %.2f s worst", name, times[times.count / 2], times.last ?? 0))
    }
    return lines
  }
}
