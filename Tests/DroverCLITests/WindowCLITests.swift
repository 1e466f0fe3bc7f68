import DroverEngine
import Foundation
import Testing

/// #44 through the binary on libvirtd's test driver, on the real clock: a rollout started before
/// a one-minute window waits for it (and `rollout status` says so while it does), then runs in
/// it; `plan` says when it would start; `apply --json` reports the wait as typed events matching
/// the schema. Heal starts a dead node outside the window but never replaces one there.
@Suite(.serialized) struct WindowCLITests {
  /// `HH:MM` in UTC of `t`.
  static func clock(_ t: Double) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "HH:mm"
    return f.string(from: Date(timeIntervalSince1970: t))
  }

  @Test func aRolloutWaitsForARealOneMinuteWindowAndRunsInIt() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("win")
    defer {
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"])
    }
    try h.writePool(pool, replicas: 2, image: "demo@v1")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0, "creating nodes is no maintenance: never held")
    // The window: the next whole minute at least 20 s away, for one minute (drover.yaml's default).
    let opens = ((Date().timeIntervalSince1970 + 20) / 60).rounded(.up) * 60
    try "project: \(h.project)\nstate: {backend: local, dir: .drover}\nwindow: {start: \"\(Self.clock(opens))\", end: \"\(Self.clock(opens + 60))\", timezone: UTC}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    try h.writePool(pool, replicas: 2, image: "demo@v2")
    let plan = try h.run(["plan"])
    #expect(plan.stdout.contains("maintenance window: every day \(Self.clock(opens))–\(Self.clock(opens + 60)) UTC"), "\(plan.stdout)")
    #expect(plan.stdout.contains("the first node would start at") && plan.stdout.contains("the rollout waits for it"), "\(plan.stdout)")
    try JSONContractTests.expectValid("plan", try h.run(["plan", "--json"]).stdout)

    let out = h.dir.appendingPathComponent("apply.jsonl")
    FileManager.default.createFile(atPath: out.path, contents: nil)
    let handle = try FileHandle(forWritingTo: out)
    let pipe = Pipe()
    let textfile = h.dir.appendingPathComponent("apply.prom").path
    let apply = try h.start(["apply", "--auto-approve", "--json", "--textfile", textfile], output: pipe)
    // Copy its output as it comes (a full pipe would stall it).
    let copier = Thread { while case let data = pipe.fileHandleForReading.availableData, !data.isEmpty { handle.write(data) } }
    copier.start()
    defer { if apply.isRunning { apply.terminate() } }
    // While it waits, `rollout status` says for what and for how long.
    var waiting = ""
    for _ in 0..<60 where !waiting.contains("waiting for the window (opens in") {
      Thread.sleep(forTimeInterval: 0.5)
      waiting = (try? h.run(["rollout", "status", pool]).stdout) ?? ""
    }
    #expect(waiting.contains("waiting for the window (opens in"), "\(waiting)")
    let deadline = Date().addingTimeInterval(150)
    while apply.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.5) }
    #expect(!apply.isRunning, "the rollout ends within the window")
    apply.waitUntilExit()
    Thread.sleep(forTimeInterval: 0.3)
    let events = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    #expect(apply.terminationStatus == 0, "\(events)")
    try JSONContractTests.expectValid("apply-event", events)
    let deferrals = JSONContractTests.lines(events).filter { $0["type"] as? String == "deferral" }
    #expect(deferrals.first?["outcome"] as? String == "waiting" && deferrals.last?["outcome"] as? String == "proceeded", "\(deferrals)")
    let metrics = (try? String(contentsOfFile: textfile, encoding: .utf8)) ?? ""
    #expect(metrics.contains("drover_rollout_deferrals{pool=\"\(pool)\",kind=\"window\",outcome=\"proceeded\"} 1"), "\(metrics)")
    #expect(metrics.contains("# TYPE drover_rollout_deferred_seconds gauge\ndrover_rollout_deferred_seconds{pool=\"\(pool)\",kind=\"window\"} "), "\(metrics)")
    let status = try h.run(["rollout", "status", "--json", pool])
    try JSONContractTests.expectValid("rollout-status", status.stdout)
    let rollouts = try h.json(status.stdout)["rollouts"] as? [[String: Any]]
    let waits = rollouts?.first?["deferrals"] as? [[String: Any]]
    #expect(waits?.count == 1 && waits?.first?["kind"] as? String == "window" && waits?.first?["outcome"] as? String == "proceeded", "\(status.stdout)")
    // Nothing was replaced before the window opened: every step is journaled after it.
    let journal = try RolloutJournal(directory: h.dir.appendingPathComponent(".drover/journal").path, pool: pool, keyring: h.keyring(), state: .local)
    let steps = journal.records().filter { $0.event == .stepStarted }
    #expect(!steps.isEmpty && steps.allSatisfy { $0.time >= opens && $0.time < opens + 60 }, "\(steps.map { $0.time - opens })")
  }

  @Test func healStartsADeadNodeOutsideTheWindowButReplacesOnlyInIt() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("hw")
    defer {
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"])
    }
    let hour = (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600
    let closed = "window: {start: \"\(Self.clock(hour + 2 * 3600))\", end: \"\(Self.clock(hour + 3 * 3600))\"}"
    let open = "window: {start: \"\(Self.clock(hour - 3600))\", end: \"\(Self.clock(hour + 3 * 3600))\"}"
    func write(_ actions: String, _ window: String) throws {
      try h.writePool(pool, replicas: 2, extra: "remediation: {unhealthy_after: 0s, repair_after: 0s, max_unhealthy: 1, actions: [\(actions)]}\n\(window)\n")
    }
    func uuid() throws -> String? { try h.holder.domain(named: "\(pool)-2")?.uuid }
    try write("start, replace", closed)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let before = try uuid()
    // A dead node outside the window: the repair on its own disk runs.
    try h.holder.domain(named: "\(pool)-2")?.destroy()
    let started = try h.run(["heal"])
    #expect(started.stdout.contains("start \(pool)-2"), "\(started.stdout)\(started.stderr)")
    #expect(try uuid() == before && (try h.holder.domain(named: "\(pool)-2")?.state()) == .running, "started on its own disk")
    // A pass that sees it healthy ends the incident.
    #expect(try h.run(["heal"]).status == 0)
    // Only replace allowed: outside the window it is deferred, and the node is left as it is.
    try write("replace", closed)
    try h.holder.domain(named: "\(pool)-2")?.destroy()
    let deferred = try h.run(["heal"])
    #expect(deferred.status == 2, "an unhealthy node is left: \(deferred.stdout)\(deferred.stderr)")
    #expect(deferred.stdout.contains("replace of \(pool)-2 deferred: outside the window"), "\(deferred.stdout)")
    #expect(try uuid() == before, "not replaced outside the window")
    // In the window, it is.
    try write("replace", open)
    let replaced = try h.run(["heal"])
    #expect(replaced.status == 0, "\(replaced.stdout)\(replaced.stderr)")
    #expect(try uuid() != before, "replaced once the window is open")
  }
}
