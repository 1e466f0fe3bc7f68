import DroverEngine
import DroverRollout
import Foundation
import Libvirt
import Testing

/// Rollouts end to end on libvirtd's test driver. Health is a real command whose answer the test
/// controls: a node is unhealthy while `fail/<pool>-<index>/<image>` exists in the project.
final class RolloutHarness {
  let h: CLIHarness
  let pool: String
  let replicas: Int

  init(replicas: Int = 3, budget: Int = 0, onBudget: String = "rollback", waves: String = "[2]") throws {
    h = try CLIHarness()
    pool = CLIHarness.unique("ro")
    self.replicas = replicas
    let script = h.dir.appendingPathComponent("health.sh").path
    try """
      #!/bin/sh
      key=$(echo "$DROVER_NODE" | sed -E 's/^(.*-[0-9]+)(-g[0-9]+)?$/\\1/')
      # "hold": the check waits until the test opens the gate (an event, not a time window).
      if [ -e "\(h.dir.path)/hold" ]; then while [ ! -e "\(h.dir.path)/gate" ]; do sleep 0.05; done; fi
      [ ! -e "\(h.dir.path)/fail/$key/$DROVER_IMAGE" ]
      """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    self.spec = """
      health:
        - type: command
          command: ["\(script)"]
          timeout: 3s
          interval: 100ms
      drain:
        type: command
        cordon: ["/bin/sh", "-c", "echo cordon $DROVER_NODE >> \(h.dir.path)/hooks.log"]
        uncordon: ["/bin/sh", "-c", "echo uncordon $DROVER_NODE >> \(h.dir.path)/hooks.log"]
        timeout: 5s
      upgrade: {canary: 1, waves: \(waves), max_surge: 1, max_unavailable: 0, health_timeout: 5s, on_budget_exceeded: \(onBudget)}
      error_budget: \(budget)

      """
    try h.writePool(pool, replicas: replicas, image: "demo@v1", extra: spec)
  }

  var spec: String

  func setImage(_ image: String) throws { try h.writePool(pool, replicas: replicas, image: image, extra: spec) }

  func fail(_ index: Int, on image: String = "demo@v2") throws {
    try FileManager.default.createDirectory(at: h.dir.appendingPathComponent("fail/\(pool)-\(index)/\(image)"), withIntermediateDirectories: true)
  }

  /// (index, image, generation, domain name) of every node of the pool.
  func nodes() throws -> [(index: Int, image: String, generation: Int, name: String)] {
    try h.holder.allDomains().compactMap { d -> (Int, String, Int, String)? in
      guard let xml = try? d.metadata(namespace: "https://drover.dev/xmlns/node/1"), xml.contains("pool=\"\(pool)\"") else { return nil }
      func attr(_ k: String) -> String { xml.components(separatedBy: " \(k)=\"").dropFirst().first?.components(separatedBy: "\"").first ?? "" }
      return (Int(attr("index")) ?? 0, attr("image"), Int(attr("generation")) ?? 0, d.name)
    }.sorted { ($0.0, $0.3) < ($1.0, $1.3) }
  }

  func journal() throws -> RolloutJournal { try RolloutJournal(directory: h.dir.appendingPathComponent(".drover/journal").path, pool: pool, keyring: h.keyring(), state: .local) }

  func cleanup() throws {
    try h.writePool(pool, replicas: 0, image: "demo@v1")
    try? FileManager.default.removeItem(at: h.dir.appendingPathComponent(".drover/journal"))
    _ = try h.run(["apply", "--auto-approve"])
  }
}

@Suite(.serialized) struct RolloutCLITests {
  @Test func healthyRolloutRunsCanaryThenWaves() throws {
    let r = try RolloutHarness()
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    let plan = try r.h.run(["plan"])
    #expect(plan.stdout.contains("Rollout of pool \(r.pool): demo@v1 → demo@v2"))
    #expect(plan.stdout.contains("canary: \(r.pool)-1"))
    #expect(plan.stdout.contains("wave 1: \(r.pool)-2, \(r.pool)-3"))
    #expect(plan.stdout.contains("error budget: 0 failed nodes across the rollout, then rollback"))
    let apply = try r.h.run(["apply", "--auto-approve"])
    #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3], "no duplicate, no missing node")
    #expect(nodes.allSatisfy { $0.image == "demo@v2" && $0.generation == 2 })
    let hooks = try String(contentsOf: r.h.dir.appendingPathComponent("hooks.log"), encoding: .utf8).split(separator: "\n")
    #expect(hooks.first == "cordon \(r.pool)-1", "the canary goes first")
    #expect(hooks.filter { $0.hasPrefix("uncordon") }.count == 3)
    #expect(try r.journal().rollouts().last?.status == .completed)
    #expect(try r.h.run(["plan", "--detailed-exitcode"]).status == 0)
    try r.cleanup()
  }

  @Test func failingCanaryStopsAndRollsBack() throws {
    let r = try RolloutHarness()
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try r.fail(1)
    let apply = try r.h.run(["apply", "--auto-approve"])
    #expect(apply.status == 3)
    #expect(apply.stderr.contains("error budget exceeded: 1 failed node > budget 0"))
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3])
    #expect(nodes.allSatisfy { $0.image == "demo@v1" }, "\(nodes)")
    #expect(nodes.filter { $0.index > 1 }.allSatisfy { $0.generation == 1 }, "later waves never started")
    let status = try r.h.run(["rollout", "status", r.pool])
    #expect(status.stdout.contains("rolled-back") && status.stdout.contains("\(r.pool)-1 (rolled back)"))
    #expect(status.stdout.contains("stopped because: the error budget was exceeded"))
    try r.cleanup()
  }

  @Test func secondWaveExhaustsBudgetAndEveryReplacedNodeRollsBack() throws {
    let r = try RolloutHarness(replicas: 4, budget: 1, waves: "[1]")
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try r.fail(2)
    try r.fail(3)
    let apply = try r.h.run(["apply", "--auto-approve"])
    #expect(apply.status == 3)
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3, 4])
    #expect(nodes.allSatisfy { $0.image == "demo@v1" }, "\(nodes)")
    #expect(nodes.first { $0.index == 4 }?.generation == 1, "node 4 was never started")
    let state = try #require(try r.journal().rollouts().last)
    #expect(state.failed.keys.sorted() == ["\(r.pool)-2", "\(r.pool)-3"])
    #expect(state.rolledBack == ["\(r.pool)-1", "\(r.pool)-2", "\(r.pool)-3"])
    let marks = try r.h.holder.allDomains().compactMap { try? $0.metadata(namespace: "https://drover.dev/xmlns/node/1") }
      .filter { $0.contains("pool=\"\(r.pool)\"") && $0.contains(" rollout=\"") }
    #expect(marks.isEmpty, "a rolled-back rollout leaves no mark on the nodes it recreated: \(marks)")
    #expect(try r.h.run(["plan", "--detailed-exitcode"]).status != 1, "and no plan sees it in progress")
    try r.cleanup()
  }

  @Test func pauseResumeAndAbort() throws {
    let r = try RolloutHarness(replicas: 3)
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try "".write(to: r.h.dir.appendingPathComponent("hold"), atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
    process.arguments = ["apply", "--auto-approve"]
    process.currentDirectoryURL = r.h.dir
    process.environment = ProcessInfo.processInfo.environment.merging(["DROVER_PROJECT": r.h.project]) { $1 }
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Pause once the rollout has started: the canary's health check holds it until the gate opens.
    var paused = false
    for _ in 0..<1200 where !paused && process.isRunning {
      paused = (try? r.h.run(["rollout", "pause", r.pool]))?.status == 0
      if !paused { Thread.sleep(forTimeInterval: 0.05) }
    }
    try "".write(to: r.h.dir.appendingPathComponent("gate"), atomically: true, encoding: .utf8)
    process.waitUntilExit()
    #expect(paused)
    #expect(process.terminationStatus == 3)
    #expect(try r.journal().rollouts().last?.status == .paused)
    let done = try r.nodes().filter { $0.image == "demo@v2" }.count
    #expect(done >= 1 && done < 3, "stopped after the node in flight: \(done)")
    #expect(try r.h.run(["rollout", "status", r.pool]).stdout.contains("paused"))

    // Abort a paused rollout: every replaced node goes back.
    let abort = try r.h.run(["rollout", "abort", r.pool])
    #expect(abort.status == 3, "\(abort.stdout)\(abort.stderr)")
    #expect(try r.nodes().allSatisfy { $0.image == "demo@v1" })

    // A new rollout, paused and resumed, completes.
    try FileManager.default.removeItem(at: r.h.dir.appendingPathComponent("hold"))
    try r.h.writePool(r.pool, replicas: 3, image: "demo@v2", extra: r.spec.replacingOccurrences(of: "on_budget_exceeded: rollback", with: "on_budget_exceeded: pause"))
    try r.fail(1)
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 3)
    #expect(try r.journal().rollouts().last?.status == .paused)
    let history = try r.h.run(["rollout", "history", r.pool])
    #expect(history.stdout.contains("rolled-back") && history.stdout.contains("paused"))
    try r.cleanup()
  }

  /// kill -9 in the middle of the canary (old and new domain both there, the old one cordoned),
  /// then abort: nothing is running, so the abort rolls back at once; the half-replaced node is
  /// rolled back too, and one domain per index remains, uncordoned, with its own overlay.
  @Test func abortAfterACrashMidNodeRollsItBack() throws {
    let r = try RolloutHarness()
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    let crashed = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:health"])
    #expect(crashed.status != 0)
    #expect(try r.nodes().filter { $0.index == 1 }.count == 2, "old and new of the canary both exist")
    let abort = try r.h.run(["rollout", "abort", r.pool])
    #expect(abort.status == 3, "\(abort.stdout)\(abort.stderr)")
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3], "\(nodes)")
    #expect(nodes.allSatisfy { $0.image == "demo@v1" && $0.generation == 1 }, "the originals stay: \(nodes)")
    let hooks = try String(contentsOf: r.h.dir.appendingPathComponent("hooks.log"), encoding: .utf8)
    #expect(hooks.hasSuffix("uncordon \(r.pool)-1\n"), "the cordoned original is back in service: \(hooks)")
    try r.h.expectOverlaysMatchDomains(r.pool, "after abort")
    #expect(try r.h.run(["plan", "--target", r.pool]).stdout.contains("Rollout of pool \(r.pool): demo@v1 → demo@v2"), "the spec still asks for v2")
    try r.cleanup()
  }

  /// #38: a rollout an older Drover started and journaled unsealed (its records without `mac`,
  /// as before journals were sealed) is finished by the next apply, and aborted by `rollout
  /// abort`; once sealed records follow it, an edit of those old records is refused by name.
  @Test(arguments: [false, true])
  func aRolloutJournaledBeforeSealingIsFinishedOrAborted(abort: Bool) throws {
    let r = try RolloutHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    let crashed = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:health"])
    #expect(crashed.status != 0)
    // What an older Drover wrote: the same records, no seal.
    let path = r.h.dir.appendingPathComponent(".drover/journal/\(r.pool).jsonl").path
    let unsealed = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line -> String in
      var row = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
      row["mac"] = nil
      return String(decoding: (try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }
    try (unsealed.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    if abort {
      let aborted = try r.h.run(["rollout", "abort", r.pool])
      #expect(aborted.status == 3, "\(aborted.stdout)\(aborted.stderr)")
      #expect(try r.nodes().allSatisfy { $0.image == "demo@v1" && $0.generation == 1 }, "the originals stay")
    } else {
      let finished = try r.h.run(["apply", "--auto-approve"])
      #expect(finished.status == 0 && finished.stdout.contains("resuming rollout"), "\(finished.stdout)\(finished.stderr)")
      let nodes = try r.nodes()
      #expect(nodes.allSatisfy { $0.image == "demo@v2" }, "\(nodes)")
    }
    let journal = try r.journal()
    #expect(try journal.checkedRollouts().last?.isActive == false, "the old rollout ended")
    #expect(journal.records().contains { $0.mac != nil } && journal.records().contains { $0.mac == nil }, "old records, then sealed ones")
    // The old records are bound by the sealed ones after them now: an edit is refused.
    var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    lines[0] = lines[0].replacingOccurrences(of: "demo@v2", with: "demo@v3")
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    let refused = try r.h.run(["rollout", "status", r.pool])
    #expect(refused.status == 1 && refused.stderr.contains("does not verify"), "\(refused.stdout)\(refused.stderr)")
    try (unsealed.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// A hook that hangs, and a process it started in the background, are both gone when drain
  /// returns: the wait ended at the timeout by killing its process group, not by the hook ending.
  @Test func aDrainHookThatHangsIsKilledAtItsTimeout() throws {
    let pids = FileManager.default.temporaryDirectory.appendingPathComponent("drover-hook-\(UUID().uuidString.prefix(8))").path
    defer { try? FileManager.default.removeItem(atPath: pids) }
    let hook = ["/bin/sh", "-c", "sleep 600 & echo $! > \(pids); echo $$ >> \(pids); wait"]
    let drainer = Drainers.make(.init(backend: .command(cordon: nil, drain: hook, uncordon: nil), timeout: .seconds(1)))
    let drained = try drainer.drain(NodeEndpoint(name: "n", host: "h", pool: "p", image: "i"), timeout: 1)
    #expect(!drained)
    let started = try String(contentsOfFile: pids, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
    #expect(started.count == 2, "the hook and its background child both started")
    for pid in started { #expect(ProcessLiveness.isGone(pid), "process \(pid) of the hook was killed") }
  }
}

/// Kill the process (SIGKILL) at every step boundary of a rollout and of a rollback, run apply
/// again, and check that the pool converges: no duplicate domain, no node lost, the budget
/// counted once, and a foreign domain untouched.
@Suite(.serialized) struct RolloutCrashTests {
  static let boundaries = [
    "rollout-started", "step-done:cordon", "step-done:drain", "step-started:create", "step-done:create", "step-done:health",
    "step-done:remove-old", "step-done:uncordon", "node-done", "node-done#2", "marks-cleared",
  ]

  @Test(arguments: boundaries)
  func crashDuringRolloutConverges(_ boundary: String) throws {
    let r = try RolloutHarness()
    let foreign = try r.h.holder.defineDomain(
      xml: "<domain type='test'><name>\(r.pool)-bystander</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    defer { try? foreign.undefine() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    let crashed = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": boundary])
    #expect(crashed.status != 0, "killed at \(boundary)")
    let again = try r.h.run(["apply", "--auto-approve"])
    #expect(again.status == 0, "\(boundary): \(again.stdout)\(again.stderr)")
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3], "\(boundary): \(nodes)")
    #expect(nodes.allSatisfy { $0.image == "demo@v2" }, "\(boundary): \(nodes)")
    #expect(try r.journal().rollouts().last?.status == .completed)
    #expect(try r.journal().records().filter { $0.event == .nodeFailed }.isEmpty)
    #expect(try r.h.run(["plan", "--detailed-exitcode"]).status == 0)
    #expect(try foreign.state() == .shutoff && r.h.holder.domain(named: "\(r.pool)-bystander") != nil)
    try r.cleanup()
  }

  /// The canary (web-1) is replaced, web-2 fails: the rollback really rebuilds web-1 on v1.
  /// Steps: canary create #1, health #1, uncordon #1; web-2 create #2, health #2 (fails);
  /// rollback of web-1 create #3, health #3, remove-old, uncordon #2.
  @Test(arguments: [
    "node-failed", "rollback-started", "step-done:create#3", "step-done:health#3", "step-done:remove-old#2", "step-done:uncordon#2",
    "node-rolled-back",
  ])
  func crashDuringRollbackConvergesAndCountsTheFailureOnce(_ boundary: String) throws {
    let r = try RolloutHarness()
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try r.fail(2)
    let crashed = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": boundary])
    #expect(crashed.status != 0 && crashed.status != 3, "killed at \(boundary)")
    let again = try r.h.run(["apply", "--auto-approve"])
    #expect(again.status == 3, "\(boundary): \(again.stdout)\(again.stderr)")
    let nodes = try r.nodes()
    #expect(nodes.map(\.index) == [1, 2, 3], "\(boundary): \(nodes)")
    #expect(nodes.allSatisfy { $0.image == "demo@v1" }, "\(boundary): \(nodes)")
    let state = try #require(try r.journal().rollouts().last)
    #expect(state.status == .rolledBack)
    #expect(state.failed.count == 1, "the failure counts once")
    try r.cleanup()
  }
}
