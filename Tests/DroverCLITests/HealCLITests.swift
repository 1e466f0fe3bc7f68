import DroverEngine
import DroverRollout
import Foundation
import Libvirt
import Testing

/// #20 through the built binary on libvirtd's test driver (real domains with real overlay
/// volumes; only booting differs): `heal` replaces a destroyed node, journaled as a heal and
/// counted once across a `kill -9`; a wider outage short-circuits; protection, saved plans,
/// drift and `watch` behave as the issue says. Real VMs: `HealSystemTests`.
@Suite struct HealCLITests {
  final class HealHarness {
    let h: CLIHarness
    let pool: String

    init(replicas: Int = 3, remediation: String = "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}", extra: String = "") throws {
      h = try CLIHarness()
      pool = CLIHarness.unique("hl")
      try write(replicas: replicas, remediation: remediation, extra: extra)
    }

    func write(replicas: Int, remediation: String, extra: String = "") throws {
      try h.writePool(
        pool, replicas: replicas,
        extra: """
          remediation: \(remediation)
          drain:
            type: command
            cordon: ["/bin/sh", "-c", "echo cordon $DROVER_NODE >> \(h.dir.path)/hooks.log"]
            drain: ["/bin/sh", "-c", "echo drain $DROVER_NODE >> \(h.dir.path)/hooks.log"]
            uncordon: ["/bin/sh", "-c", "echo uncordon $DROVER_NODE >> \(h.dir.path)/hooks.log"]
            timeout: 5s
          \(extra)

          """)
    }

    /// The pool's domains: name → (uuid, generation).
    func nodes() throws -> [String: (uuid: String, generation: Int)] {
      var result: [String: (String, Int)] = [:]
      for d in try h.holder.allDomains() {
        guard let xml = try? d.metadata(namespace: "https://drover.dev/xmlns/node/1"), xml.contains("pool=\"\(pool)\"") else { continue }
        let generation = Int(xml.components(separatedBy: " generation=\"").dropFirst().first?.components(separatedBy: "\"").first ?? "") ?? 0
        result[d.name] = (d.uuid, generation)
      }
      return result
    }

    func destroy(_ index: Int) throws { try h.holder.domain(named: "\(pool)-\(index)")?.destroy() }

    /// Overlays of the pool in the image pool: one per domain, none left over.
    func overlays() throws -> [String] {
      try h.holder.storagePool(named: "drover-images")?.volumeNames().filter { $0.contains(".\(pool)-") && !$0.hasSuffix(".console") }.sorted() ?? []
    }

    func journal() throws -> RolloutJournal { try RolloutJournal(directory: h.dir.appendingPathComponent(".drover/journal").path, pool: pool, keyring: h.keyring(), state: .local) }

    var hooks: String { (try? String(contentsOf: h.dir.appendingPathComponent("hooks.log"), encoding: .utf8)) ?? "" }

    func cleanup() throws {
      try h.writePool(pool, replicas: 0)
      _ = try h.run(["apply", "--auto-approve"])
    }
  }

  @Test func healReplacesADestroyedNodeFromItsRecordAndCountsItOnce() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let before = try r.nodes()
    let metrics = r.h.dir.appendingPathComponent("heal.prom").path
    #expect(try r.h.run(["heal", "--textfile", metrics]).status == 0, "all healthy: exit 0")
    #expect(try r.nodes().mapValues(\.uuid) == before.mapValues(\.uuid), "a healthy pass touches nothing")

    try r.destroy(2)
    let dry = try r.h.run(["heal", "--dry-run", "--json"])
    #expect(dry.status == 2, "a dry run leaves the dead node: \(dry.stdout)")
    #expect(dry.stdout.contains("\"verdict\":\"remediate\"") && dry.stdout.contains("\"replace\":[\"\(r.pool)-2\"]"))
    #expect(try r.nodes()["\(r.pool)-2"]?.uuid == before["\(r.pool)-2"]?.uuid, "--dry-run changes nothing")

    let healed = try r.h.run(["heal", "--textfile", metrics])
    #expect(healed.status == 0, "\(healed.stdout)\(healed.stderr)")
    #expect(healed.stdout.contains("drain skipped: the node is shut off"), "a dead node's drain is skipped, and the output says so")
    let after = try r.nodes()
    #expect(after.count == 3)
    #expect(after["\(r.pool)-2"]?.uuid != before["\(r.pool)-2"]?.uuid && after["\(r.pool)-2"]?.generation == 2, "rebuilt in place, the next generation")
    #expect(after["\(r.pool)-1"]?.uuid == before["\(r.pool)-1"]?.uuid && after["\(r.pool)-3"]?.uuid == before["\(r.pool)-3"]?.uuid)
    #expect(try r.overlays().count == 3, "the old overlay went with the old domain")
    #expect(r.hooks.contains("cordon \(r.pool)-2") && r.hooks.contains("uncordon \(r.pool)-2") && !r.hooks.contains("drain \(r.pool)-2\n"))
    #expect(try r.h.run(["plan", "--detailed-exitcode"]).status == 0, "a healed node is what the spec says: no changes")

    let heals = try r.journal().rollouts().filter { $0.kind == .heal }
    #expect(heals.count == 1 && heals.first?.status == .completed && heals.first?.done == ["\(r.pool)-2"])
    let history = try r.h.run(["rollout", "history", "--json", r.pool])
    #expect(history.stdout.contains("\"kind\":\"heal\""))
    #expect(try r.h.run(["heal", "--textfile", metrics]).status == 0)
    let prom = try String(contentsOfFile: metrics, encoding: .utf8)
    #expect(prom.contains("drover_remediations_total{project=\"\(r.h.project)\",pool=\"\(r.pool)\"} 1"), "counted once\n\(prom)")
    #expect(prom.contains("drover_node_healthy{project=\"\(r.h.project)\",pool=\"\(r.pool)\",node=\"\(r.pool)-2\",host=\"test+unix:///default\"} 1"))
    #expect(prom.contains("drover_heal_short_circuit{project=\"\(r.h.project)\",pool=\"\(r.pool)\"} 0"))
  }

  /// #36: the gentlest repair first — a paused node is resumed, a shut-off one started, each the
  /// same domain on the same overlay; `--dry-run --json` names the rung per node first.
  @Test func pausedAndStoppedNodesAreBroughtBackOnTheirOwnDisks() throws {
    let r = try HealHarness(remediation: "{unhealthy_after: 0s, max_unhealthy: 1}")
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let before = try r.nodes(), overlays = try r.overlays()
    try r.h.holder.domain(named: "\(r.pool)-1")?.suspend()
    try r.destroy(2)
    let dry = try r.h.run(["heal", "--dry-run", "--json"])
    #expect(dry.status == 2, "\(dry.stdout)")
    #expect(dry.stdout.contains("\"action\":\"resume\"") && dry.stdout.contains("\"action\":\"start\"") && dry.stdout.contains("\"discards_disk\":false"), "\(dry.stdout)")
    #expect(!dry.stdout.contains("\"discards_disk\":true"))
    #expect(try r.nodes().mapValues(\.uuid) == before.mapValues(\.uuid) && (try r.h.holder.domain(named: "\(r.pool)-1")?.state()) == .paused, "a dry run changes nothing")
    let healed = try r.h.run(["heal"])
    #expect(healed.status == 0, "\(healed.stdout)\(healed.stderr)")
    #expect(healed.stdout.contains("resume \(r.pool)-1: done (same domain, same disk)") && healed.stdout.contains("start \(r.pool)-2: done (same domain, same disk)"), "\(healed.stdout)")
    #expect(try r.nodes().mapValues(\.uuid) == before.mapValues(\.uuid), "nothing replaced")
    #expect(try r.overlays() == overlays, "every disk kept")
    for i in 1...3 { #expect((try r.h.holder.domain(named: "\(r.pool)-\(i)")?.state()) == .running) }
    #expect(r.hooks.isEmpty, "a repair on its own disk neither cordons nor drains")
    #expect(try r.journal().rollouts().isEmpty, "repairs are no rollout: nothing for plan to wait on")
    let again = try r.h.run(["heal"])
    #expect(again.status == 0 && !again.stdout.contains(": done"), "\(again.stdout)")
  }

  /// #38: someone who can write the state folder appends a heal to the journal of a protected
  /// pool — a replay of a real heal's rows under a new number, or a row without a seal. Each is
  /// refused by name; neither `heal` nor `apply` touches a node; the record still says protected.
  @Test func aForgedJournalRowIsRefusedAndNothingIsTouched() throws {
    let r = try HealHarness()
    let path = r.h.dir.appendingPathComponent(".drover/journal/\(r.pool).jsonl").path
    var genuine = ""
    defer {
      try? genuine.write(toFile: path, atomically: true, encoding: .utf8)
      // Unprotecting takes an apply of its own before the nodes can go.
      try? r.write(replicas: 3, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}")
      _ = try? r.h.run(["apply", "--auto-approve"])
      try? r.cleanup()
    }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.destroy(1)
    #expect(try r.h.run(["heal"]).status == 0, "a real heal, journaled and sealed")
    try r.write(replicas: 3, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}", extra: "protect: true")
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0, "the records say protect: true")
    genuine = try String(contentsOfFile: path, encoding: .utf8)
    let before = try r.nodes(), overlays = try r.overlays()
    let lines = genuine.split(separator: "\n").map(String.init)
    let started = try #require(lines.first { $0.contains("\"rollout-started\"") })
    var row = try #require(try JSONSerialization.jsonObject(with: Data(started.utf8)) as? [String: Any])
    row["seq"] = lines.count + 1
    row["rollout"] = "heal-\(r.pool)-forged"
    let replayed = String(decoding: try JSONSerialization.data(withJSONObject: row), as: UTF8.self)
    row["mac"] = nil
    let unsealed = String(decoding: try JSONSerialization.data(withJSONObject: row), as: UTF8.self)
    for (forged, why) in [(replayed, "does not verify under project \(r.h.project)'s key"), (unsealed, "has no seal, after sealed records")] {
      try (genuine + forged + "\n").write(toFile: path, atomically: true, encoding: .utf8)
      let named = "journal record \(lines.count + 1) of pool \(r.pool) (rollout heal-\(r.pool)-forged, rollout-started) \(why)"
      for command in [["heal"], ["apply", "--auto-approve"], ["rollout", "status", r.pool]] {
        let run = try r.h.run(command)
        #expect(run.status == 1 && run.stderr.contains(named) && run.stderr.contains("nothing in this journal is acted on"), "\(command): \(run.stdout)\(run.stderr)")
      }
      #expect(try r.nodes().mapValues(\.uuid) == before.mapValues(\.uuid) && (try r.overlays()) == overlays, "nothing touched")
    }
    let record = try #require(try r.h.holder.domain(named: "\(r.pool)-2")?.metadata(namespace: "https://drover.dev/xmlns/node/1"))
    #expect(record.contains("protect=\"true\""), "\(record)")
    try genuine.write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try r.h.run(["heal"]).status == 0, "the genuine journal verifies again")
  }

  /// #38: the project key is withheld from every child (hooks, checks, drains), as the state
  /// database's password is.
  @Test func noChildSeesTheProjectKey() throws {
    let r = try HealHarness(extra: "health: [{type: command, command: [\"/bin/sh\", \"-c\", \"env > $DROVER_NODE.env\"], timeout: 5s, interval: 100ms, retries: 0}]")
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let key = try r.h.run(["key", "export"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(key.hasPrefix("drover-key-1:"))
    try r.h.writePool(r.pool, replicas: 4, extra: "health: [{type: command, command: [\"/bin/sh\", \"-c\", \"env > $DROVER_NODE.env\"], timeout: 5s, interval: 100ms, retries: 0}]\n")
    let run = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_PROJECT_KEY": key])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    let env = try String(contentsOf: r.h.dir.appendingPathComponent("\(r.pool)-4.env"), encoding: .utf8)
    #expect(env.contains("DROVER_NODE=\(r.pool)-4") && !env.contains("DROVER_PROJECT_KEY") && !env.contains(String(key.suffix(64))), "\(env)")
  }

  @Test func aWiderOutageShortCircuitsAndReplacesNothing() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let before = try r.nodes()
    for i in 1...3 { try r.destroy(i) }
    let metrics = r.h.dir.appendingPathComponent("heal.prom").path
    let run = try r.h.run(["heal", "--json", "--textfile", metrics])
    #expect(run.status == 2, "unhealthy nodes left: exit 2")
    #expect(run.stdout.contains("\"verdict\":\"short-circuit\"") && run.stdout.contains("3 of 3 nodes are unhealthy, more than max_unhealthy 1"))
    #expect(try r.nodes().mapValues(\.uuid) == before.mapValues(\.uuid), "nothing replaced")
    #expect(try String(contentsOfFile: metrics, encoding: .utf8).contains("drover_heal_short_circuit{project=\"\(r.h.project)\",pool=\"\(r.pool)\"} 1"))
    let drift = try r.h.run(["drift", "--json"])
    #expect(drift.stdout.contains("unhealthy at the last heal pass: shut off"), "drift reports what heal judged")
  }

  @Test func protectedPoolsAreReportedNotRemediated() throws {
    let r = try HealHarness(extra: "protect: true")
    defer {
      try? r.write(replicas: 3, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}")
      try? r.cleanup()
    }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let before = try r.nodes()
    try r.destroy(1)
    let run = try r.h.run(["heal"])
    #expect(run.status == 2 && run.stdout.contains("protected"), "\(run.stdout)")
    #expect(try r.nodes()["\(r.pool)-1"]?.uuid == before["\(r.pool)-1"]?.uuid)
    try r.write(replicas: 3, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, remediate_protected: true, actions: [replace]}", extra: "protect: true")
    #expect(try r.h.run(["heal"]).status == 0)
    #expect(try r.nodes()["\(r.pool)-1"]?.uuid != before["\(r.pool)-1"]?.uuid)
  }

  /// `kill -9` after the dead node was removed and before its replacement exists: the rerun
  /// resumes that heal (the pool's journal has it in progress), creates exactly one node and
  /// counts one remediation.
  @Test func aHealKilledMidReplacementResumesWithoutADuplicate() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.destroy(3)
    let killed = try r.h.run(["heal"], environment: ["DROVER_CRASH_AT": "step-done:remove-old"])
    #expect(killed.status != 0 && killed.status != 2)
    #expect(try r.nodes()["\(r.pool)-3"] == nil, "killed between removing the dead node and creating its replacement")
    #expect(try r.journal().active()?.kind == .heal)
    let rerun = try r.h.run(["heal"])
    #expect(rerun.status == 0, "\(rerun.stdout)\(rerun.stderr)")
    #expect(rerun.stdout.contains("resume"))
    let after = try r.nodes()
    #expect(after.count == 3 && after["\(r.pool)-3"]?.generation == 2)
    #expect(try r.overlays().count == 3)
    let heals = try r.journal().rollouts().filter { $0.kind == .heal }
    #expect(heals.count == 1 && heals.first?.done.count == 1, "one heal, one node: counted once")
    #expect(HealEngine.remediations(stateDirectory: r.h.dir.appendingPathComponent(".drover").path, pool: r.pool, keyring: try r.h.keyring(), state: .local) == 1)
  }

  /// A replacement that never becomes healthy: the heal fails (exit 3), its node is reported
  /// unhealthy in the metrics, and the failure is in the journal.
  @Test func aFailedRemediationExitsThree() throws {
    let r = try HealHarness(extra: "")
    defer { try? r.cleanup() }
    let gate = r.h.dir.appendingPathComponent("broken").path
    try r.write(
      replicas: 3, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}",
      extra: "health: [{type: command, command: [\"/bin/sh\", \"-c\", \"[ ! -e \(gate) ]\"], timeout: 2s, interval: 100ms, retries: 0}]\nupgrade: {health_timeout: 2s}")
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    FileManager.default.createFile(atPath: gate, contents: Data())
    try r.destroy(1)
    let metrics = r.h.dir.appendingPathComponent("heal.prom").path
    let run = try r.h.run(["heal", "--textfile", metrics])
    #expect(run.status == 3, "\(run.stdout)\(run.stderr)")
    #expect(try String(contentsOfFile: metrics, encoding: .utf8).contains("node=\"\(r.pool)-1\",host=\"test+unix:///default\"} 0"))
    #expect(try r.journal().rollouts().last?.failed["\(r.pool)-1"] != nil)
    try FileManager.default.removeItem(atPath: gate)
  }

  @Test func aSavedPlanMadeStaleByAHealSaysSo() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.write(replicas: 4, remediation: "{unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}")
    let planFile = r.h.dir.appendingPathComponent("scale.plan").path
    _ = try r.h.run(["plan", "--out", planFile])
    #expect(FileManager.default.fileExists(atPath: planFile))
    try r.destroy(1)
    #expect(try r.h.run(["heal"]).status == 0)
    let apply = try r.h.run(["apply", planFile])
    #expect(apply.status != 0)
    #expect(apply.stderr.contains("was replaced by heal heal-\(r.pool)-"), "\(apply.stderr)")
    #expect(try r.nodes().count == 3, "the stale plan did nothing")
  }

  @Test func anUpgradeInProgressIsLeftToIt() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    // A rollout journaled as in progress (an apply killed mid-upgrade).
    try r.h.writePool(r.pool, replicas: 3, image: "demo@v2", extra: "remediation: {unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}\n")
    let killed = try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "rollout-started"])
    #expect(killed.status != 0)
    #expect(try r.journal().active()?.kind == .upgrade)
    try r.destroy(2)
    let run = try r.h.run(["heal"])
    #expect(run.status == 2 && run.stdout.contains("rollout-in-progress"), "\(run.stdout)")
    #expect(try r.journal().rollouts().filter { $0.kind == .heal }.isEmpty)
  }

  @Test func badHeartbeatAndRemediationSpecsAreLocatedErrors() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("hb")
    try h.writePool(pool, replicas: 1, extra: "heartbeat: {source: consle, interval: 50ms}\nremediation: {max_unhealthy: 120%, max_in_flight: 0, unknown: 1}\n")
    let run = try h.run(["validate"])
    #expect(run.status != 0)
    for text in ["unknown heartbeat source 'consle'", "did you mean 'console'", "max_unhealthy must be", "max_in_flight must be", "unknown"] {
      #expect(run.stderr.contains(text) || run.stdout.contains(text), "\(text)\n\(run.stderr)")
    }
    #expect(run.stderr.contains("pools/\(pool).yaml:5"), "located: \(run.stderr)")
  }

  /// An agent heartbeat costs one libvirt call per running node, and the test driver answers it
  /// (its `virDomainGetTime` stands in for a guest agent): healthy on every pass. A silent agent
  /// on a real VM: `HealSystemTests`.
  @Test func anAnsweringGuestAgentIsABeat() throws {
    let r = try HealHarness(remediation: "{unhealthy_after: 0s, max_unhealthy: 0}", extra: "heartbeat: {source: agent, interval: 100ms, missed: 2}")
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try r.h.run(["heal", "--json"]).status == 0)
    Thread.sleep(forTimeInterval: 0.3)
    let second = try r.h.run(["heal", "--json"])
    #expect(second.status == 0 && !second.stdout.contains("unhealthy"), "\(second.stdout)")
  }

  /// The contrib units' commands are real: each ExecStart's arguments parse with this binary.
  @Test func contribUnitsRunRealCommands() throws {
    let h = try CLIHarness()
    for unit in ["drover-watch.service", "drover-heal.service"] {
      let text = try String(contentsOf: CLIHarness.repo.appendingPathComponent("contrib/systemd/\(unit)"), encoding: .utf8)
      let exec = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
      let args = exec.dropFirst("ExecStart=".count).split(separator: " ").dropFirst().map(String.init)
      let run = try h.run(args + ["--help"])
      #expect(run.status == 0 && run.stdout.contains("USAGE"), "\(unit): \(args) \(run.stderr)")
    }
  }

  /// `watch` replaces a node destroyed while it runs, and a SIGTERM ends it.
  @Test func watchHealsWhileItRunsAndStopsOnSIGTERM() throws {
    let r = try HealHarness()
    defer { try? r.cleanup() }
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    let before = try r.nodes()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
    process.arguments = ["watch", "--interval", "200ms"]
    process.currentDirectoryURL = r.h.dir
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = "1"
    env["DROVER_PROJECT"] = nil
    env["DROVER_CONFIG"] = r.h.dir.appendingPathComponent("machine-config.yaml").path
    process.environment = env
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    try r.destroy(1)
    var replaced = false
    for _ in 0..<300 where !replaced {
      Thread.sleep(forTimeInterval: 0.1)
      if let now = try r.nodes()["\(r.pool)-1"], now.uuid != before["\(r.pool)-1"]?.uuid, (try? r.journal().active()) == nil { replaced = true }
    }
    #expect(replaced, "watch replaced the destroyed node")
    process.terminate()
    #expect(ProcessLiveness.isGone(process.processIdentifier, within: 30))
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
  }
}
