import Foundation
import Testing

/// A host that stops answering in the middle of a call, made real: a relay in front of libvirtd's
/// socket (`Tests/Fixtures/relay/libvirt-relay.py`) that stops relaying once the client lists the
/// domains, sockets left open. Never the shared daemon itself.
@Suite(.serialized) struct FrozenHostTests {
  final class Relay {
    let process = Process()
    let socket: String

    init(freezeAt procedure: Int = 344, occurrence: Int = 1) throws {
      socket = FileManager.default.temporaryDirectory.appendingPathComponent("drover-relay-\(UUID().uuidString.prefix(8)).sock").path
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments = ["python3", CLIHarness.repo.appendingPathComponent("Tests/Fixtures/relay/libvirt-relay.py").path, socket, "/run/libvirt/libvirt-sock", "\(procedure)", "\(occurrence)"]
      let out = Pipe()
      process.standardOutput = out
      process.standardError = FileHandle.nullDevice
      try process.run()
      _ = out.fileHandleForReading.availableData  // "ready": the socket is listening
    }

    var uri: String { "test+unix:///default?socket=\(socket)" }

    /// Stops relaying for good: the socket is gone, so a client's connect is refused.
    /// SIGKILL, not SIGTERM: a child spawned from a test worker thread may inherit a mask that
    /// blocks SIGTERM, and then it would never end.
    func stop() {
      if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
      }
      try? FileManager.default.removeItem(atPath: socket)
    }

    deinit { stop() }
  }

  func project(_ relay: Relay) throws -> (CLIHarness, String) {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("fz")
    try "name: \(pool)\nhosts: [\"\(relay.uri)\"]\nreplicas: 1\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    return (h, pool)
  }

  /// The host freezes in the middle of a rollout (the new node's definition): apply fails within
  /// the call timeout, tries nothing more on that host, releases its lock, exits non-zero.
  @Test func applyMidRolloutFailsWithinTheCallTimeout() throws {
    let relay = try Relay(freezeAt: 11, occurrence: 2)  // DomainDefineXML: the first apply's passes
    let (h, pool) = try project(relay)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try "name: \(pool)\nhosts: [\"\(relay.uri)\"]\nreplicas: 1\nimage: demo@v2\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    let run = try h.run(["apply", "--auto-approve", "--call-timeout", "2"])
    #expect(run.status != 0)
    #expect(run.stdout.contains("no answer within 2 s") || run.stderr.contains("no answer within 2 s"), "\(run.stdout)\(run.stderr)")
    #expect(run.stdout.contains("nothing more is done on it") || run.stderr.contains("nothing more is done on it"))
    let lockFile = h.dir.appendingPathComponent(".drover/locks/\(pool).lock").path
    let fd = open(lockFile, O_RDWR)
    defer { close(fd) }
    #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the pool lock was released")
  }

  /// #39: a wide apply's workers make their calls inline on lanes of their own; the host
  /// freezes in the middle of the sixth definition: every worker's call is abandoned at the
  /// call timeout by the thread that waits for the workers, apply reports exactly what it did
  /// (the nodes it made, the ones it could not), exits non-zero and releases its lock.
  @Test func aWideApplyFailsWithinTheCallTimeoutOnLanes() throws {
    let relay = try Relay(freezeAt: 11, occurrence: 6)  // DomainDefineXML
    let (h, pool) = try project(relay)
    try "name: \(pool)\nhosts: [\"\(relay.uri)\"]\nreplicas: 20\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    let run = try h.run(["apply", "--auto-approve", "--call-timeout", "2"])
    let all = run.stdout + run.stderr
    #expect(run.status != 0)
    #expect(all.contains("no answer within 2 s"), "\(all)")
    #expect(!all.contains("Apply complete"), "\(all)")
    // Every one of the 20 nodes is accounted for: created, failed or skipped, none dropped.
    let nodes = (1...20).map { "\(pool)-\($0) on" }
    let accounted = nodes.filter { n in all.split(separator: "\n").contains { $0.contains(n) && ($0.contains("created") || $0.contains("FAILED") || $0.contains("skipped")) } }
    #expect(accounted.count == 20, "\(all)")
    let lockFile = h.dir.appendingPathComponent(".drover/locks/\(pool).lock").path
    let fd = open(lockFile, O_RDWR)
    defer { close(fd) }
    #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the pool lock was released")
  }

  /// #39 (review): the host freezes while the first lane prepares Drover's image pool — under
  /// the lock every other worker then waits on, outside any call. The waiter gives up on the
  /// stuck worker at the call timeout and on the waiting ones a timeout later: apply ends,
  /// non-zero, with every node reported.
  @Test func aWideApplyFrozenUnderTheImagePoolLockStillEnds() throws {
    let relay = try Relay(freezeAt: 84, occurrence: 2)  // StoragePoolLookupByName: observe's, then the first lane's
    let (h, pool) = try project(relay)
    try "name: \(pool)\nhosts: [\"\(relay.uri)\"]\nreplicas: 20\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    // Started, not run: were it to hang (as it did before the waiter gave up on waiting
    // workers), the test fails and kills it instead of hanging the suite.
    let out = Pipe()
    let apply = try h.start(["apply", "--auto-approve", "--call-timeout", "2"], output: out)
    nonisolated(unsafe) var seen = Data()
    let reader = Thread { seen = out.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let ended = ProcessLiveness.isGone(apply.processIdentifier, within: 60)
    #expect(ended, "apply ended on its own")
    if !ended { kill(apply.processIdentifier, SIGKILL) }
    apply.waitUntilExit()
    while reader.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
    let all = String(decoding: seen, as: UTF8.self)
    #expect(apply.terminationStatus != 0)
    #expect(all.contains("no answer within 2 s"), "\(all)")
    let lines = all.split(separator: "\n")
    let accounted = (1...20).filter { i in
      lines.contains { $0.contains("\(pool)-\(i) on") && ($0.contains("created") || $0.contains("FAILED") || $0.contains("skipped")) }
    }
    #expect(accounted.count == 20, "\(all)")
  }

  /// Keepalive on a local connection (a Unix socket, as `qemu:///system`): with a call timeout
  /// far away, the unanswered pings are what end the call: libvirt closes the connection and the
  /// call fails with its own keepalive error, not Drover's watchdog message.
  @Test func keepaliveEndsACallToAFrozenLocalDaemon() throws {
    for command in [["plan"], ["drift"]] {
      let relay = try Relay()
      let (h, _) = try project(relay)
      let run = try h.run(command + ["--call-timeout", "60", "--keepalive-interval", "1", "--keepalive-count", "2"])
      #expect(run.status == 1, "\(command)")
      #expect(run.stderr.contains("keepalive timeout") && run.stderr.contains(relay.socket), "\(command): \(run.stderr)")
      #expect(!run.stderr.contains("no answer within"), "the watchdog did not fire first: \(run.stderr)")
    }
  }

  /// With keepalive turned off the watchdog alone ends the call: the two are independent.
  @Test func withoutKeepaliveTheWatchdogEndsTheCall() throws {
    let relay = try Relay()
    let (h, _) = try project(relay)
    let run = try h.run(["plan", "--call-timeout", "2", "--keepalive-interval", "0"])
    #expect(run.status == 1)
    #expect(run.stderr.contains("no answer within 2 s") && !run.stderr.contains("keepalive"), "\(run.stderr)")
  }

  @Test func planAndDriftFailWithinTheCallTimeoutNamingTheHost() throws {
    for command in [["plan"], ["drift"], ["apply", "--auto-approve"]] {
      let relay = try Relay()
      let (h, pool) = try project(relay)
      let run = try h.run(command + ["--call-timeout", "2"])
      #expect(run.status == 1, "\(command)")
      #expect(run.stderr.contains("no answer within 2 s") && run.stderr.contains(relay.socket), "\(command): \(run.stderr)")
      #expect(!run.stdout.contains("No changes") && !run.stdout.contains("No drift:"), "\(command): \(run.stdout)")
      if command[0] == "apply" {
        // The lock went with the process: nothing is left holding the pool.
        let lockFile = h.dir.appendingPathComponent(".drover/locks/\(pool).lock").path
        let fd = open(lockFile, O_RDWR)
        defer { close(fd) }
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the pool lock was released")
      }
    }
  }

  /// #37: `watch` against a host frozen mid-call, pass after pass: the first pass abandons the
  /// stuck call; later passes refuse to call the host again while it is still out, so the
  /// process does not gain a thread per pass (without the bound it gains one each pass: every
  /// reconnect blocks behind the frozen relay and is abandoned at its deadline).
  @Test func watchAgainstAFrozenHostDoesNotGrowItsThreads() throws {
    let relay = try Relay()
    let (h, pool) = try project(relay)
    try "name: \(pool)\nhosts: [\"\(relay.uri)\"]\nreplicas: 1\nimage: demo@v1\nremediation: {unhealthy_after: 0s}\n"
      .write(to: h.dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    let metrics = h.dir.appendingPathComponent("watch.prom").path
    let watch = try h.start([
      "watch", "--interval", "100ms", "--max-failed-passes", "1000", "--call-timeout", "1", "--connect-timeout", "1",
      "--keepalive-interval", "0", "--textfile", metrics,
    ], environment: ["DROVER_PROJECT_KEY": "drover-key-1:\(h.project):" + String(repeating: "5a", count: 32)])
    defer {
      kill(watch.processIdentifier, SIGKILL)
      watch.waitUntilExit()
    }
    func metric(_ name: String) -> Int? {
      let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
      return text.split(separator: "\n").first { $0.hasPrefix(name + "{") }.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
    }
    func threads() -> Int {
      let status = (try? String(contentsOfFile: "/proc/\(watch.processIdentifier)/status", encoding: .utf8)) ?? ""
      return status.split(separator: "\n").first { $0.hasPrefix("Threads:") }.flatMap { Int($0.dropFirst(8).trimmingCharacters(in: .whitespaces)) } ?? 0
    }
    func waitForFailedPasses(_ n: Int) -> Bool {
      for _ in 0..<1200 {
        if let seen = metric("drover_heal_pass_failures_total"), seen >= n { return true }
        Thread.sleep(forTimeInterval: 0.1)
      }
      return false
    }
    #expect(waitForFailedPasses(5), "five passes failed on the frozen host")
    let early = threads()
    #expect(waitForFailedPasses(25), "twenty more")
    let late = threads()
    #expect(watch.isRunning)
    #expect(late <= early + 2, "threads after 5 failed passes: \(early), after 25: \(late)")
    #expect((metric("drover_abandoned_calls") ?? 99) <= 2, "abandoned calls still out are bounded")
    #expect((metric("drover_abandoned_calls_total") ?? 0) >= 1, "the stuck call was counted")
  }
}
