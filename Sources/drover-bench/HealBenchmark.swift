import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverSpec
import Foundation
import Libvirt

/// `heal` (#20), on libvirtd's test driver:
///
/// 1. A heal pass over `n` healthy nodes (default 1,000) with a console heartbeat: its libvirt
///    calls against the observe it is built on (target: observe + at most one call per node),
///    and `drover heal` against `drover plan` over the same nodes, in the same run.
/// 2. Under `drover watch --interval 1s`, from a node's death (`virsh destroy`) to the start of
///    its replacement (the heal's rollout-started record in the journal), against
///    `unhealthy_after` + one interval (target: within one interval of `unhealthy_after`).
enum HealBenchmark {
  static let uri = FleetBenchmark.uri

  static func run(drover: String, runs: Int) throws -> [String] {
    let n = Int(ProcessInfo.processInfo.environment["DROVER_BENCH_HEAL_NODES"] ?? "") ?? 1000
    let project = try ScratchProject("heal")
    defer { project.remove() }
    let work = project.path
    let holder = try LibvirtHostBackend.connect(uri, keyring: Keyring(project: "bench", key: nil), imagePool: "drover-images")
    try holder.ensureImagePool(name: "drover-images", directory: "/var/lib/drover/images")
    let env = ["DROVER_PROJECT": "bench", "NO_COLOR": "1"]
    func pool(_ name: String, replicas: Int, remediation: String) throws {
      try """
        name: \(name)
        hosts: [\(uri)]
        replicas: \(replicas)
        image: demo@v1
        heartbeat: {source: console, interval: 10s, missed: 3}
        remediation: \(remediation)

        """.write(toFile: work + "/pools/p.yaml", atomically: true, encoding: .utf8)
    }
    var lines: [String] = []

    // 1. The cost of a pass over n healthy nodes.
    let big = "heal\(n)"
    try FleetBenchmark.removeDomains(holder, prefix: big + "-")
    try pool(big, replicas: n, remediation: "{unhealthy_after: 5m, max_unhealthy: 10%}")
    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply")
    try FleetBenchmark.check(runProcess(drover, ["heal"], cwd: work, environment: env), "drover heal (all healthy)")
    let key = try ProjectKeyStore.load(project: "bench", stateDirectory: work + "/.drover")
    let backend = try LibvirtHostBackend.connect(uri, keyring: Keyring(project: "bench", key: key), imagePool: "drover-images")
    let specs = try loadPools(work)
    backend.calls.reset()
    let observed = WorldObserver.observe([backend])
    let observeCalls = backend.calls.total
    let engine = HealEngine(
      pools: specs, project: "bench", stateDirectory: work + "/.drover", backends: [uri: backend], consoleLog: { "/nonexistent/\($0).log" }, ssh: nil, keyring: backend.keyring, state: .local)
    let pass = try engine.decide(observed: observed, now: Date().timeIntervalSince1970, remember: false)
    let healCalls = backend.calls.total - observeCalls
    let healthy = pass.nodes.filter { $0.condition == "healthy" }.count
    // The same pass with an agent heartbeat: one guest-agent call per running node.
    let agentSpecs = specs.map { spec -> PoolSpec in
      var p = spec
      p.heartbeat = HeartbeatSpec(source: .agent, interval: .seconds(10), missed: 3)
      return p
    }
    backend.calls.reset()
    _ = try HealEngine(
      pools: agentSpecs, project: "bench", stateDirectory: work + "/.drover", backends: [uri: backend], consoleLog: { _ in nil }, ssh: nil, keyring: backend.keyring, state: .local
    ).decide(observed: observed, now: Date().timeIntervalSince1970, remember: false)
    let agentCalls = backend.calls.total
    var contest = Contest()
    contest.add("heal", runs: runs) { try FleetBenchmark.check(runProcess(drover, ["heal"], cwd: work, environment: env), "drover heal") }
    contest.add("plan", runs: runs) { try FleetBenchmark.check(runProcess(drover, ["plan", "--detailed-exitcode"], cwd: work, environment: env), "drover plan") }
    let r = contest.run()
    lines.append("-- a heal pass over \(n) healthy nodes on \(uri), console heartbeat (median of \(runs))")
    lines.append(Report.time("drover heal (whole process)", r["heal"], note: Report.ratio(r["heal"], r["plan"], atMost: nil) + " (this = drover plan, the same observe)"))
    lines.append(Report.time("drover plan (whole process)", r["plan"]))
    lines.append(
      String(
        format: "  libvirt calls: observe %d, heal pass %d beyond it (%.3f per node, %d of %d nodes judged healthy)   target ≤ 1 per node: %@",
        observeCalls, healCalls, Double(healCalls) / Double(max(1, n)), healthy, n, Double(healCalls) <= Double(n) && healthy == n ? "MET" : "MISSED"))
    lines.append(
      String(
        format: "  with an agent heartbeat instead: %d agent pings (%.3f per node; each is 3 RPCs: lookup, agent timeout, guest time)", agentCalls,
        Double(agentCalls) / Double(max(1, n))))
    try pool(big, replicas: 0, remediation: "{}")
    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply (scale to 0)")

    // 2. Death to replacement under watch.
    let small = "healw"
    let unhealthyAfter = 2.0, interval = 1.0
    try FleetBenchmark.removeDomains(holder, prefix: small + "-")
    // A pool that only replaces (#36: otherwise a destroyed node is started on its own disk).
    try pool(small, replicas: 3, remediation: "{unhealthy_after: \(Int(unhealthyAfter))s, max_unhealthy: 1, actions: [replace]}")
    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply")
    let watch = try startProcess(drover, ["watch", "--interval", "\(Int(interval))s"], cwd: work, environment: env)
    defer {
      kill(watch, SIGTERM)
      _ = awaitProcess(watch)
    }
    let journalPath = work + "/.drover/journal/\(small).jsonl"
    var delays: [Double] = []
    for round in 0..<runs {
      Thread.sleep(forTimeInterval: 1.5)  // a pass or so of healthy nodes first
      let victim = NodeName.of(pool: small, index: round % 3 + 1)
      let before = heals(journalPath)
      guard let domain = try holder.connection.domain(named: victim) else { throw BenchError("no domain \(victim)") }
      let died = Date().timeIntervalSince1970
      try domain.destroy()
      let deadline = Date().addingTimeInterval(unhealthyAfter + 10 * interval + 30)
      var started: Double?
      while started == nil && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.02)
        started = heals(journalPath).dropFirst(before.count).first
      }
      guard let started else { throw BenchError("watch did not start replacing \(victim)") }
      delays.append(started - died)
      // The heal finishes before the next death.
      while completedHeals(journalPath) < before.count + 1 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    }
    let sorted = delays.sorted()
    let median = sorted[sorted.count / 2], worst = sorted.last ?? 0
    let target = unhealthyAfter + interval
    lines.append("")
    lines.append("-- death to the start of its replacement under drover watch --interval \(Int(interval))s, unhealthy_after \(Int(unhealthyAfter))s (\(runs) deaths)")
    lines.append(Report.time("median", median, note: String(format: "unhealthy_after + one interval = %.1fs", target)))
    lines.append(Report.time("worst", worst, note: "target ≤ unhealthy_after + one interval (+ one pass's own time): " + (worst <= target + 0.5 ? "MET" : "MISSED")))
    kill(watch, SIGTERM)
    _ = awaitProcess(watch)

    // 3. (#36) The ladder: the same deaths with every rung allowed — each node is started again
    // on its own disk (its UUID and overlay kept) — against the replacements above.
    try pool(small, replicas: 3, remediation: "{unhealthy_after: \(Int(unhealthyAfter))s, max_unhealthy: 1}")
    let ladder = try startProcess(drover, ["watch", "--interval", "\(Int(interval))s"], cwd: work, environment: env)
    defer {
      kill(ladder, SIGTERM)
      _ = awaitProcess(ladder)
    }
    var repairs: [Double] = []
    var kept = 0
    for round in 0..<runs {
      Thread.sleep(forTimeInterval: 1.5)
      let victim = NodeName.of(pool: small, index: round % 3 + 1)
      guard let domain = try holder.connection.domain(named: victim) else { throw BenchError("no domain \(victim)") }
      let uuid = domain.uuid
      let died = Date().timeIntervalSince1970
      try domain.destroy()
      let deadline = Date().addingTimeInterval(unhealthyAfter + 10 * interval + 30)
      var back: Double?
      while back == nil && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.02)
        if (try? holder.connection.domain(named: victim)?.state()) == .running { back = Date().timeIntervalSince1970 }
      }
      guard let back else { throw BenchError("watch did not start \(victim) again") }
      repairs.append(back - died)
      if try holder.connection.domain(named: victim)?.uuid == uuid { kept += 1 }
    }
    let repairMedian = repairs.sorted()[repairs.count / 2]
    lines.append("")
    lines.append("-- death to running again on its own disk (the ladder's start rung) under the same watch (\(runs) deaths)")
    lines.append(
      Report.time(
        "median", repairMedian,
        note: "\(Report.ratio(repairMedian, median, atMost: 0.5)) (this = death to replacement); the same domain and disk \(kept) of \(runs) times"))
    try pool(small, replicas: 0, remediation: "{}")
    kill(ladder, SIGTERM)
    _ = awaitProcess(ladder)
    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply (scale to 0)")
    return lines
  }

  /// The start times of the heal rollouts in a pool's journal, oldest first.
  static func heals(_ path: String) -> [Double] {
    records(path).filter { $0["event"] as? String == "rollout-started" && ($0["rollout"] as? String)?.hasPrefix("heal-") == true }.compactMap { $0["time"] as? Double }
  }

  static func completedHeals(_ path: String) -> Int {
    records(path).filter { $0["event"] as? String == "completed" && ($0["rollout"] as? String)?.hasPrefix("heal-") == true }.count
  }

  static func records(_ path: String) -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
  }

  static func loadPools(_ work: String) throws -> [PoolSpec] {
    let (sources, _) = SpecFiles.read([work + "/pools", work + "/images"])
    let (specs, problems) = SpecLoader.load(sources, machine: MachineSettings(), projectFolder: work, hosts: [])
    if problems.hasErrors { throw BenchError("the scratch pool does not load: \(problems)") }
    return specs.poolSpecs
  }
}
