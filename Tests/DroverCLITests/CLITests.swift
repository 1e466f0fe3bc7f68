import DroverEngine
import Foundation
import Libvirt
import Testing

/// The built binary, end to end: exit codes, output shapes, saved plans, locks.
@Suite(.serialized) struct CLITests {
  @Test func helpAndVersion() throws {
    let h = try CLIHarness()
    let help = try h.run(["--help"])
    #expect(help.status == 0)
    for command in ["validate", "plan", "apply", "status", "unlock"] { #expect(help.stdout.contains(command)) }
    // The version, the commit it was built from, the libvirt library it runs with.
    let version = try h.run(["--version"]).stdout
    #expect(version.range(of: #"^drover 0\.1\.0 \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\nlibvirt \d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version)")
    let usage = try h.run(["plan", "--bogus"])
    #expect(usage.status == 64)
    #expect(usage.stderr.contains("Unknown option '--bogus'"))
  }

  @Test func validateExitCodesAndJSON() throws {
    let h = try CLIHarness()
    try h.writePool("web", replicas: 2)
    #expect(try h.run(["validate"]).status == 0)
    try h.writePool("web", replicas: -1)
    let bad = try h.run(["validate"])
    #expect(bad.status == 1)
    #expect(bad.stderr.contains("pools/web.yaml:3:11: error: replicas must be a whole number ≥ 0"))
    let json = try h.json(try h.run(["validate", "--format", "json"]).stdout)
    #expect(json["valid"] as? Bool == false)
    let first = (json["diagnostics"] as? [[String: Any]])?.first
    #expect(first?["code"] as? String == "spec.range")
    #expect(((first?["range"] as? [String: Any])?["start"] as? [String: Any])?["line"] as? Int == 3)
  }

  @Test func planApplyPlanShowsNoChanges() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("web")
    try h.writePool(pool, replicas: 2)
    let plan = try h.run(["plan", "--detailed-exitcode"])
    #expect(plan.status == 2)
    #expect(plan.stdout.contains("+ \(pool)-1"))
    #expect(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to destroy."))

    let json = try h.json(try h.run(["plan", "--json"]).stdout)
    #expect(json["format_version"] as? String == "3.0" && json["project"] as? String == h.project)
    #expect((json["actions"] as? [[String: Any]])?.map { $0["action"] as? String } == ["create", "create"])
    #expect((json["summary"] as? [String: Int])?["add"] == 2)

    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 0, "\(apply.stderr)")
    #expect(apply.stdout.contains("Apply complete! Nodes: 2 added, 0 changed, 0 destroyed."))
    #expect(try h.holder.domain(named: "\(pool)-1") != nil)

    let again = try h.run(["plan", "--detailed-exitcode"])
    #expect(again.status == 0)
    #expect(again.stdout.contains("No changes."))

    let status = try h.run(["status"])
    #expect(status.stdout.contains("\(pool)-2") && status.stdout.contains("running"))

    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.holder.domain(named: "\(pool)-1") == nil)
  }

  @Test func applyWithoutATerminalNeedsApproval() throws {
    let h = try CLIHarness()
    try h.writePool(CLIHarness.unique("web"), replicas: 1)
    let run = try h.run(["apply"], stdin: "yes\n")
    #expect(run.status == 1)
    #expect(run.stderr.contains("pass --auto-approve"))
  }

  @Test func stalePlanIsRefusedWithNoActionTaken() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("api")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 3)
    let saved = try h.run(["plan", "--out", "plans/scale.plan"])
    #expect(saved.status == 0)
    // Someone stops a node behind Drover's back.
    try #require(try h.holder.domain(named: "\(pool)-1")).destroy()
    let refused = try h.run(["apply", "plans/scale.plan"])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("the world changed since the plan was saved"))
    #expect(refused.stderr.contains("domain \(pool)-1 is now inactive"))
    #expect(try h.holder.domain(named: "\(pool)-3") == nil, "no action was taken")

    // A fresh plan applies exactly.
    #expect(try h.run(["plan", "--out", "plans/fresh.plan"]).status == 0)
    let applied = try h.run(["apply", "plans/fresh.plan"])
    #expect(applied.status == 0, "\(applied.stderr)")
    #expect(try h.holder.domain(named: "\(pool)-3") != nil)
    #expect(try h.holder.domain(named: "\(pool)-1")?.state() == .running)

    // Changed specs make a saved plan stale too.
    #expect(try h.run(["plan", "--out", "plans/x.plan"]).status == 0)
    try h.writePool(pool, replicas: 1)
    let specChanged = try h.run(["apply", "plans/x.plan"])
    #expect(specChanged.status == 1 && specChanged.stderr.contains("the pool specs changed"))
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func lockContentionFailsFastNamingTheHolder() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("locked")
    try h.writePool(pool, replicas: 1)
    let lockDir = h.dir.appendingPathComponent(".drover/locks").path
    var lock: PoolLock? = try PoolLock.acquire(pool: pool, directory: lockDir, command: "test holder", timeout: 0, state: .local)
    let blocked = try h.run(["apply", "--auto-approve"])
    #expect(blocked.status == 1)
    #expect(blocked.stderr.contains("pool \(pool) is locked by pid \(getpid())"))
    #expect(blocked.stderr.contains("'test holder'"))
    #expect(blocked.stderr.contains("drover unlock \(pool)"))
    #expect(try h.holder.domain(named: "\(pool)-1") == nil)
    #expect(try h.run(["unlock", pool]).status == 1, "unlock refuses while a live process holds it")
    _ = lock
    lock = nil
    #expect(try h.run(["apply", "--auto-approve", "--lock-timeout", "5s"]).status == 0)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func aKilledHoldersLockIsNotStale() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("crash")
    try h.writePool(pool, replicas: 0)
    let lockDir = h.dir.appendingPathComponent(".drover/locks")
    try FileManager.default.createDirectory(at: lockDir, withIntermediateDirectories: true)
    // Another process takes the pool's byte of the shared lock file (the documented protocol:
    // one byte at the first 62 bits of the name's SHA-256) and is killed with SIGKILL.
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    holder.arguments = [
      "python3", "-c",
      """
      import fcntl,hashlib,sys,time
      f=open(sys.argv[1],'a'); off=int(hashlib.sha256(sys.argv[2].encode()).hexdigest()[:16],16)&0x3FFFFFFFFFFFFFFF
      fcntl.lockf(f, fcntl.LOCK_EX, 1, off); time.sleep(60)
      """,
      lockDir.appendingPathComponent(".pool-locks").path, pool,
    ]
    try holder.run()
    var held = false
    for _ in 0..<100 where !held {
      held = PoolLock.isHeld(pool: pool, directory: lockDir.path, state: .local)
      if !held { Thread.sleep(forTimeInterval: 0.05) }
    }
    #expect(held, "the holder took the lock")
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    kill(holder.processIdentifier, SIGKILL)
    holder.waitUntilExit()
    // The kernel drops a dead process's lock when it exits: wait for that
    // event, not for a time.
    for _ in 0..<100 where PoolLock.isHeld(pool: pool, directory: lockDir.path, state: .local) { Thread.sleep(forTimeInterval: 0.02) }
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func protectedPoolRefusesToShrink() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("db")
    try h.writePool(pool, replicas: 2, extra: "protect: true\n")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 1, extra: "protect: true\n")
    let plan = try h.run(["plan"])
    #expect(plan.status == 1)
    #expect(plan.stderr.contains("pool \(pool) is protected: the plan would destroy node \(pool)-2"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try h.holder.domain(named: "\(pool)-2") != nil)
    // The stricter of spec and record wins: unprotecting and shrinking at once is refused...
    try h.writePool(pool, replicas: 0)
    let both = try h.run(["apply", "--auto-approve"])
    #expect(both.status == 1 && both.stderr.contains("records protect: true") && both.stderr.contains("unprotecting takes two applies"), "\(both.stderr)")
    #expect(try h.holder.domain(named: "\(pool)-2") != nil)
    // ...so it takes two applies: protect: false first (records rewritten in place), then the shrink.
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.holder.domain(named: "\(pool)-2") == nil)
  }

  @Test func foreignDomainWithANodesNameStopsThePlan() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("fx")
    let foreign = try h.holder.defineDomain(
      xml: "<domain type='test'><name>\(pool)-1</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    defer { try? foreign.undefine() }
    try h.writePool(pool, replicas: 1)
    let plan = try h.run(["plan"])
    #expect(plan.status == 1)
    #expect(plan.stderr.contains("domain \(pool)-1 (uuid \(foreign.uuid))"))
    #expect(plan.stderr.contains("is not managed by Drover"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try foreign.state() == .shutoff)
  }

  @Test func unreachableHostFailsQuicklyWithAClearError() throws {
    let h = try CLIHarness()
    try "name: far\nhosts: ['qemu+unix:///system?socket=/nonexistent/sock']\nreplicas: 1\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/far.yaml"), atomically: true, encoding: .utf8)
    let plan = try h.run(["plan", "--connect-timeout", "3"])
    #expect(plan.status == 1)
    #expect(plan.stderr.contains("cannot plan pool far: host qemu+unix:///system?socket=/nonexistent/sock could not be read"))
  }

  /// #17: `--skip-unreachable` plans and applies the other pools; the pool on the host that
  /// could not be read is left out whole, with a warning naming the host — never changed.
  @Test func skipUnreachablePlansTheRestAndNeverTouchesThePoolThere() throws {
    let h = try CLIHarness()
    let near = CLIHarness.unique("near"), far = CLIHarness.unique("far")
    try h.writePool(near, replicas: 1)
    try "name: \(far)\nhosts: ['\(CLIHarness.uri)', 'qemu+unix:///system?socket=/nonexistent/sock']\nreplicas: 2\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/\(far).yaml"), atomically: true, encoding: .utf8)
    let refused = try h.run(["apply", "--auto-approve", "--connect-timeout", "3"])
    #expect(refused.status == 1 && refused.stderr.contains("cannot plan pool \(far)"), "\(refused.stderr)")
    #expect(try h.holder.domain(named: "\(near)-1") == nil, "nothing is applied while a host cannot be read")
    let plan = try h.run(["plan", "--skip-unreachable", "--connect-timeout", "3", "--detailed-exitcode"])
    #expect(plan.status == 2, "\(plan.stdout)\n\(plan.stderr)")
    #expect(plan.stdout.contains("+ \(near)-1") && !plan.stdout.contains("+ \(far)-"), "\(plan.stdout)")
    // That host's nodes are shown as unknown: far-2 is the one the spec places there.
    #expect(plan.stdout.contains("Pool \(far) is not planned: host qemu+unix:///system?socket=/nonexistent/sock could not be read"), "\(plan.stdout)")
    #expect(plan.stdout.contains("? \(far)-2") && !plan.stdout.contains("? \(far)-1"), "\(plan.stdout)")
    let json = try h.run(["plan", "--skip-unreachable", "--connect-timeout", "3", "--json"])
    let doc = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    let unknown = try #require(doc?["unknown"] as? [[String: Any]], "\(json.stdout)")
    #expect(unknown.count == 1 && unknown.first?["pool"] as? String == far && unknown.first?["nodes"] as? [String] == ["\(far)-2"])
    #expect(plan.stderr.contains("pool \(far) is not planned: host qemu+unix:///system?socket=/nonexistent/sock could not be read"), "\(plan.stderr)")
    let applied = try h.run(["apply", "--auto-approve", "--skip-unreachable", "--connect-timeout", "3"])
    #expect(applied.status == 0, "\(applied.stderr)")
    #expect(try h.holder.domain(named: "\(near)-1") != nil && h.holder.domain(named: "\(far)-1") == nil)
    try h.writePool(near, replicas: 0)
    try FileManager.default.removeItem(at: h.dir.appendingPathComponent("pools/\(far).yaml"))
    // The unread host is remembered (the project may have nodes there): still only skipped.
    let cleaned = try h.run(["apply", "--auto-approve", "--skip-unreachable", "--connect-timeout", "3"])
    #expect(cleaned.status == 0 && cleaned.stderr.contains("could not be read"), "\(cleaned.stderr)")
    #expect(try h.holder.domain(named: "\(near)-1") == nil)
  }
}

/// Ctrl-C during apply: steps in flight finish, nothing new starts, exit 130, and the next apply
/// converges with no duplicate.
@Suite struct InterruptTests {
  @Test func sigintStopsCleanlyAndTheNextApplyConverges() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("int")
    try h.writePool(pool, replicas: 1500)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
    process.arguments = ["apply", "--auto-approve", "--json"]
    process.currentDirectoryURL = h.dir
    var environment = ProcessInfo.processInfo.environment
    environment["DROVER_PROJECT"] = h.project
    process.environment = environment
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Wait for the first finished step, then interrupt.
    var seen = Data()
    while !String(decoding: seen, as: UTF8.self).contains("\"outcome\":\"done\"") {
      let chunk = out.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      seen += chunk
    }
    kill(process.processIdentifier, SIGINT)
    seen += out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: seen, as: UTF8.self)
    #expect(process.terminationStatus == 130)
    #expect(text.contains("\"interrupted\":true"))
    let created = try h.holder.allDomains().filter { $0.name.hasPrefix(pool + "-") }.count
    #expect(created > 0 && created < 1500, "stopped part-way: \(created)")

    let plan = try h.run(["plan", "--json"])
    let remaining = (try h.json(plan.stdout)["actions"] as? [[String: Any]])?.count
    #expect(remaining == 1500 - created, "the next plan shows exactly what remains")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.holder.allDomains().filter { $0.name.hasPrefix(pool + "-") }.count == 1500)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }
}
