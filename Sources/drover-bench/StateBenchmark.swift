import DroverBasics
import DroverEngine
import DroverPostgres
import DroverRollout
import Foundation

/// `state` (#21): the PostgreSQL state backend against the local one, in the same run, on the
/// server `scripts/postgres-test` starts (127.0.0.1:54329; `DROVER_BENCH_POSTGRES`,
/// `DROVER_BENCH_POSTGRES_PASSWORD` for another):
///
/// 1. a pool lock taken and released, and one journal append (in-process, median of 200);
/// 2. a rollout of `n` nodes (default 20) on the test driver through `drover apply`, with the
///    project's state local and then in PostgreSQL: the extra time per node (target < 10 ms).
enum StateBenchmark {
  static func run(drover: String, runs: Int) throws -> [String] {
    let url = ProcessInfo.processInfo.environment["DROVER_BENCH_POSTGRES"] ?? "postgres://drover@127.0.0.1:54329/drover"
    let password = ProcessInfo.processInfo.environment["DROVER_BENCH_POSTGRES_PASSWORD"] ?? "drover-test"
    let project = "bench-state-\(getpid())"
    var lines = ["-- the PostgreSQL state backend (\(url)) against the local one"]

    // 1. In-process costs.
    let local = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-state-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: local) }
    let ca = ProcessInfo.processInfo.environment["DROVER_BENCH_POSTGRES_CA"] ?? "/var/lib/drover/postgres-test-tls/ca.pem"
    let shared = try PostgresState.connect(url: url, project: project, password: password, trust: PostgresTrust(caFile: ca))
    let holder = LockHolder.current(command: "drover-bench state")
    func median(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
      var times: [Double] = []
      for _ in 0..<n {
        let t = Date()
        try body()
        times.append(Date().timeIntervalSince(t))
      }
      return times.sorted()[n / 2]
    }
    let lockLocal = try median(200) { _ = try PoolLock.acquire(pool: "p", directory: local + "/locks", command: "bench", timeout: 0, state: .local) }
    let lockShared = try median(200) {
      guard let held = try shared.acquireLock(name: "p", holder: holder, timeout: 0) else { throw BenchError("the lock was held") }
      held.release()
    }
    let journal = try RolloutJournal(directory: local + "/journal", pool: "p", keyring: Keyring(project: "bench", key: RecordKey.generate(project: "bench")), state: .local)
    let appendLocal = try median(200) { _ = try journal.append("r", .stepStarted, node: "p-1", step: "create") }
    let appendShared = try median(200) {
      _ = try shared.appendJournal(pool: "p") { seq, time in JournalRecord(seq: seq, time: time, rollout: "r", event: .stepStarted, node: "p-1", step: "create") }
    }
    lines.append(Report.time("lock acquire + release, PostgreSQL", lockShared, note: Report.ratio(lockShared, lockLocal, atMost: nil) + " (this = local flock)"))
    lines.append(Report.time("lock acquire + release, local", lockLocal))
    // #38: the same append with the record sealed (JournalSeal over its number and fields), as
    // RolloutJournal writes every record: what sealing adds per record.
    let seal = JournalSeal(RecordKey.generate(project: project))
    let appendSealed = try median(200) {
      _ = try shared.appendJournal(pool: "p") { seq, time in
        JournalIntegrity.seal(JournalRecord(seq: seq, time: time, rollout: "r", event: .stepStarted, node: "p-1", step: "create"), with: seal, pool: "p", prefix: "")
      }
    }
    let sealing = (appendSealed - appendShared) * 1000
    lines.append(
      Report.time("one sealed journal append, PostgreSQL", appendSealed, note: "sealing adds \(String(format: "%.3f", sealing)) ms per record (target ≤ 1 ms): \(sealing <= 1 ? "MET" : "MISSED")"))
    lines.append(Report.time("one journal append, PostgreSQL", appendShared, note: Report.ratio(appendShared, appendLocal, atMost: nil) + " (this = local fsynced line)"))
    // #41: what the runner does before every step that changes a VM — prove, in one round trip,
    // that its session still holds the pool's lock with its token.
    guard let fenced = try shared.acquireLock(name: "fence", holder: holder, timeout: 0) else { throw BenchError("the lock was held") }
    let fence = try median(200) { try shared.checkFence(["fence": fenced.token], what: "bench") }
    fenced.release()
    lines.append(
      Report.time("fence check before a step (one round trip)", fence, note: String(format: "target ≤ 2 ms per step: %@", fence <= 0.002 ? "MET" : "MISSED")))
    lines.append(Report.time("one journal append, local (fsync)", appendLocal))

    // 2. A rollout through the binary, local state against PostgreSQL state, interleaved
    // round by round (two projects, one per backend) so the machine's drift hits both alike.
    let n = Int(ProcessInfo.processInfo.environment["DROVER_BENCH_STATE_NODES"] ?? "") ?? 20
    // The machine trusts the database's CA (its state entry), as a team's machines would.
    let machine = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-machine-\(getpid()).yaml").path
    try "state:\n  \"\(try PostgresURL(url).server)\": {ca: \(ca)}\n".write(toFile: machine, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: machine) }
    let env = ["DROVER_STATE_PASSWORD": password, "NO_COLOR": "1", "DROVER_CONFIG": machine]
    struct Variant {
      var name: String
      var project: ScratchProject
      var pool: String
    }
    var variants: [Variant] = []
    for (variant, state) in [("local", "{backend: local, dir: .drover}"), ("postgres", "{backend: postgres, url: \"\(url)\"}")] {
      let scratch = try ScratchProject("state-\(variant)")
      try "name: demo\nversion: v2\nbase: {rootfs: busybox}\n".write(toFile: scratch.path + "/images/demo2.yaml", atomically: true, encoding: .utf8)
      try "project: \(project)-\(variant)\nstate: \(state)\n".write(toFile: scratch.path + "/drover.yaml", atomically: true, encoding: .utf8)
      variants.append(Variant(name: variant, project: scratch, pool: "st\(variant == "local" ? "l" : "p")\(getpid() % 10_000)"))
    }
    defer {
      for v in variants {
        v.project.remove()
        try? FileManager.default.removeItem(atPath: "/var/lib/drover/state/\(project)-\(v.name)")
      }
    }
    func write(_ v: Variant, _ image: String, _ replicas: Int) throws {
      try "name: \(v.pool)\nhosts: [\(FleetBenchmark.uri)]\nreplicas: \(replicas)\nimage: \(image)\nupgrade: {canary: 1, waves: [100%], max_surge: 1, max_unavailable: 0}\n"
        .write(toFile: v.project.path + "/pools/p.yaml", atomically: true, encoding: .utf8)
    }
    for v in variants {
      try write(v, "demo@v1", n)
      try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: v.project.path, environment: env), "drover apply (\(v.name))")
    }
    var times: [String: [Double]] = [:]
    let rounds = max(7, runs)
    for round in 0..<rounds {
      for v in variants {
        try write(v, round % 2 == 0 ? "demo@v2" : "demo@v1", n)
        let t = Date()
        try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: v.project.path, environment: env), "drover apply rollout (\(v.name))")
        times[v.name, default: []].append(Date().timeIntervalSince(t) / Double(n))
      }
    }
    var perNode: [String: Double] = [:]
    for (name, list) in times { perNode[name] = list.sorted()[list.count / 2] }
    for v in variants {
      try write(v, "demo@v1", 0)
      try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: v.project.path, environment: env), "drover apply (scale to 0)")
    }
    let extra = (perNode["postgres"] ?? 0) - (perNode["local"] ?? 0)
    lines.append("")
    lines.append("-- a rollout of \(n) nodes on \(FleetBenchmark.uri) through drover apply (median of \(rounds), interleaved)")
    lines.append(Report.time("per node, state in PostgreSQL", perNode["postgres"]))
    lines.append(Report.time("per node, state local", perNode["local"]))
    lines.append(String(format: "  extra per node with PostgreSQL: %.2f ms   target < 10 ms: %@", extra * 1000, extra < 0.010 ? "MET" : "MISSED"))
    lines.append("")
    lines += try WatchFailoverBenchmark.run(drover: drover, url: url, environment: env, project: project + "-watch")
    return lines
  }
}
