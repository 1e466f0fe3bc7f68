import Foundation
import Testing

/// Every input that names nothing, and every host not read, is an error with a diagnostic — never
/// "No changes", "No drift", "unlocked" or a raw value dump, and never exit 0.
@Suite struct NothingSilentTests {
  @Test func aMissingProjectFolderOrPoolsFolderIsAnError() throws {
    let h = try CLIHarness()
    for command in [["plan"], ["apply", "--auto-approve"], ["drift"], ["status"]] {
      let run = try h.run(command + ["-C", "/nonexistent/typo"])
      #expect(run.status == 1, "\(command)")
      #expect(run.stderr.contains("the project folder /nonexistent/typo does not exist"), "\(command): \(run.stderr)")
      #expect(!run.stdout.contains("No changes") && !run.stdout.contains("No drift"))
    }
    try FileManager.default.removeItem(at: h.dir.appendingPathComponent("pools"))
    let noPools = try h.run(["plan"])
    #expect(noPools.status == 1 && noPools.stderr.contains("pools does not exist"), "\(noPools.stderr)")
  }

  @Test func unknownNamesAreErrorsListingTheRealOnes() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("ns")
    try h.writePool(pool, replicas: 2)
    for (args, needle) in [
      (["plan", "--target", "nosuch"], "--target nosuch names no pool or node"),
      (["plan", "--exclude", "\(pool)-9"], "--exclude \(pool)-9 names no pool or node"),
      (["apply", "--auto-approve", "--target", "nosuch"], "--target nosuch names no pool or node"),
      (["plan", "--replace", pool], "--replace \(pool) names no node"),
      (["unlock", "nosuch"], "no pool named 'nosuch'"),
      (["unlock", "../../x"], "no pool named '../../x'"),
      (["rollout", "status", "nosuch"], "no pool named 'nosuch'"),
      (["rollout", "pause", "nosuch"], "no pool named 'nosuch'"),
    ] {
      let run = try h.run(args)
      #expect(run.status == 1, "\(args): \(run.status)")
      #expect(run.stderr.contains(needle), "\(args): \(run.stderr)")
      #expect(run.stderr.contains(pool), "\(args): the hint lists the real pools: \(run.stderr)")
      #expect(!run.stdout.contains("No changes"), "\(args)")
    }
    #expect(try h.nodes(pool).isEmpty, "nothing was applied")
    // Node selectors: the index name, the pool/node form.
    #expect(try h.run(["plan", "--target", "\(pool)/\(pool)-2"]).status == 0)
  }

  @Test func aPoolNodeTargetTakesThePoolLock() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("lk")
    try h.writePool(pool, replicas: 1)
    // A concurrent apply holds the pool's lock while its health check waits for a gate the test
    // opens only after the second apply has run: an event, not a time window.
    let gate = h.dir.appendingPathComponent("gate").path
    try h.writePool(
      pool, replicas: 1,
      extra: "health: [{type: command, command: [\"/bin/sh\", \"-c\", \"while [ ! -e \(gate) ]; do sleep 0.05; done\"], timeout: 120s}]\nupgrade: {health_timeout: 5m}\n")
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: CLIHarness.binary)
    holder.arguments = ["apply", "--auto-approve"]
    holder.currentDirectoryURL = h.dir
    holder.environment = ProcessInfo.processInfo.environment.merging(["DROVER_PROJECT": h.project]) { $1 }
    holder.standardOutput = FileHandle.nullDevice
    holder.standardError = FileHandle.nullDevice
    try holder.run()
    defer { holder.waitUntilExit() }
    let lockFile = h.dir.appendingPathComponent(".drover/locks/\(pool).lock").path
    var held = false
    for _ in 0..<200 where !held {
      held = (try? String(contentsOfFile: lockFile, encoding: .utf8))?.contains("apply") ?? false
      if !held { Thread.sleep(forTimeInterval: 0.02) }
    }
    #expect(held)
    let second = try h.run(["apply", "--auto-approve", "--target", "\(pool)/\(pool)-1"])
    FileManager.default.createFile(atPath: gate, contents: nil)
    #expect(second.status == 1 && second.stderr.contains("lock"), "\(second.stderr)")
  }

  @Test func aBadPlanFileAndAnUnwritableOutAreDiagnostics() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("bp")
    try h.writePool(pool, replicas: 1)
    try "garbage".write(to: h.dir.appendingPathComponent("bad.plan"), atomically: true, encoding: .utf8)
    let bad = try h.run(["apply", "bad.plan"])
    #expect(bad.status == 1 && bad.stderr.contains("not a Drover plan file: it is not valid JSON"), "\(bad.stderr)")
    #expect(!bad.stderr.contains("Diagnostic(") && !bad.stderr.contains("DecodingError"))
    let json = try h.run(["apply", "bad.plan", "--json"])
    #expect(json.stdout.contains("\"code\" : \"plan.file\"") || json.stdout.contains("\"code\":\"plan.file\""), "\(json.stdout)")
    let out = try h.run(["plan", "--out", "/proc/drover/plan"])
    #expect(out.status == 1 && out.stderr.contains("cannot save the plan"), "\(out.stderr)")
    #expect(!out.stderr.contains("NSCocoaErrorDomain"))
  }

  @Test func aHostThatCannotBeReadIsNamedAndFailsTheCommand() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("un")
    try "name: \(pool)\nhosts: [qemu+tcp://127.0.0.1:1/system]\nreplicas: 1\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    for args in [["plan"], ["plan", "--target", pool], ["drift"]] {
      let run = try h.run(args + ["--connect-timeout", "2"])
      #expect(run.status == 1, "\(args)")
      #expect(!run.stdout.contains("No changes") && !run.stdout.contains("No drift:"), "\(args): \(run.stdout)")
      #expect(run.stderr.contains("127.0.0.1:1"), "\(args): the host is named: \(run.stderr)")
    }
  }
}
