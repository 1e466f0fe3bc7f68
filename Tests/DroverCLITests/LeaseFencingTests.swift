import DroverBasics
import DroverEngine
import DroverPostgres
import Foundation
import Libvirt
import Synchronization
import Testing

/// #41 against the real PostgreSQL test servers, through the built binary: a holder frozen with
/// SIGSTOP, a database stopped with `pg_ctl stop -m immediate`, and a holder cut off by a real
/// network partition (a namespace and a veth the test makes) each lose their lock within the lease,
/// another runner takes it, and the one cut off is fenced before it changes anything; a lock
/// attempt that timed out leaves no lock behind; `unlock` ends only a holder whose lease ran out.
@Suite(.enabled(if: TestPostgres.answers, "needs the test PostgreSQL on 127.0.0.1:54329 (bash scripts/setup)"))
struct LeaseFencingTests {
  typealias S = SharedStateCLITests
  /// Short enough for a test, long enough for a loaded 2-core machine to renew in time.
  static let lease = "3s"

  /// The pool's domains by name → UUID (what a fenced runner must not have changed).
  static func domains(_ c: S.TwoCheckouts) throws -> [String: String] {
    Dictionary(try c.a.holder.allDomains().filter { $0.name.hasPrefix(c.pool + "-") }.map { ($0.name, $0.uuid) }) { a, _ in a }
  }

  /// The fencing tokens the pool's journal records were written under, in order of the records.
  static func journalTokens(_ c: S.TwoCheckouts) throws -> [Int64] {
    let out = try S.sql("SELECT coalesce(fence, 0) FROM drover_journal WHERE project = '\(c.project)' AND pool = '\(c.pool)' ORDER BY seq")
    return out.output.split(separator: "\n").compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
  }

  /// The runner held in its canary's health check (checkout a), with its output collected.
  static func heldRollout(_ c: S.TwoCheckouts, wrapper: [String] = []) throws -> (Process, OutputCollector) {
    let output = OutputCollector()
    let (first, status) = try c.startHeldRollout(output: output.pipe, wrapper: wrapper)
    #expect(status.contains("locked by pid"), "the runner holds the pool: \(status)")
    #expect(c.waitHeld(), "its canary's health check waits")
    return (first, output)
  }

  /// What the second runner sees once the first is cut off: the lock within a bound (its
  /// `--lock-timeout`: the lease and a little more), and the rollout it finishes.
  static func secondRunnerFinishes(_ c: S.TwoCheckouts) throws {
    try FileManager.default.removeItem(at: c.a.dir.appendingPathComponent("hold"))
    let second = try c.b.run(["apply", "--auto-approve", "--lock-timeout", "15s"], environment: S.env)
    #expect(second.status == 0 && second.stdout.contains("resuming rollout"), "\(second.stdout)\(second.stderr)")
  }

  /// The first runner, let go, stops before its next step with `state.fenced`, and changed
  /// nothing: the domains are those the second left.
  static func firstIsFenced(_ c: S.TwoCheckouts, _ first: Process, _ output: OutputCollector, resume: () -> Void) throws {
    let after = try domains(c)
    #expect(after.count == 2, "the second runner finished with one domain per index: \(after)")
    try c.open()
    resume()
    #expect(ProcessLiveness.isGone(first.processIdentifier, within: 90), "the fenced runner stopped")
    if first.isRunning { kill(first.processIdentifier, SIGKILL) }
    let said = output.text()
    #expect(said.contains("no longer holds its lock"), "fenced by name: \(said.suffix(3000))")
    #expect(!said.contains("replaced and healthy"), "it finished nothing: \(said.suffix(3000))")
    #expect(try domains(c) == after, "the fenced runner created or removed nothing")
    #expect(try c.b.run(["plan", "--detailed-exitcode"], environment: S.env).status == 0, "no duplicate, no orphan")
  }

  @Test func aFrozenHolderLosesItsLockWithinItsLeaseAndIsFencedWhenItWakes() throws {
    let c = try S.TwoCheckouts(lease: Self.lease)
    defer { c.cleanup() }
    let (first, output) = try Self.heldRollout(c)
    defer { kill(first.processIdentifier, SIGKILL) }
    kill(first.processIdentifier, SIGSTOP)
    try Self.secondRunnerFinishes(c)
    try Self.firstIsFenced(c, first, output) { kill(first.processIdentifier, SIGCONT) }
    // Every record carries the token of the grant it was written under; the second runner's
    // grant is a later one.
    let tokens = try Self.journalTokens(c).filter { $0 > 0 }
    #expect(Set(tokens).count >= 2 && tokens == tokens.sorted(), "tokens in journal order: \(tokens)")
  }

  @Test func theDatabaseStoppedMidRolloutStopsTheRunnerBeforeItsNextStepAndTheNextApplyResumes() throws {
    let server = S.RestartablePostgres()
    try server.start()
    let c = try S.TwoCheckouts(url: server.url, lease: Self.lease)
    defer {
      try? server.start()
      c.cleanup()
    }
    let (first, output) = try Self.heldRollout(c)
    defer { kill(first.processIdentifier, SIGKILL) }
    let before = try Self.domains(c)
    try server.stop(mode: "immediate")
    try FileManager.default.removeItem(at: c.a.dir.appendingPathComponent("hold"))
    try c.open()
    #expect(ProcessLiveness.isGone(first.processIdentifier, within: 90), "the runner stopped")
    let said = output.text()
    #expect(said.contains("no longer holds its lock"), "fenced by name: \(said.suffix(3000))")
    #expect(try Self.domains(c) == before, "nothing removed once its database was gone (the canary and both old nodes stay)")
    try server.start()
    let next = try c.b.run(["apply", "--auto-approve"], environment: S.env)
    #expect(next.status == 0 && next.stdout.contains("resuming rollout"), "\(next.stdout)\(next.stderr)")
    #expect(try Self.domains(c).count == 2)
    #expect(try c.b.run(["plan", "--detailed-exitcode"], environment: S.env).status == 0, "no duplicate, no orphan")
  }

  @Test(.enabled(if: getuid() == 0, "makes a network namespace")) func aPartitionedHolderLosesItsLockAndIsFenced() throws {
    let c = try S.TwoCheckouts(lease: Self.lease)
    defer { c.cleanup() }
    let link = try Partition()
    defer { link.remove() }
    let (first, output) = try Self.heldRollout(c, wrapper: link.wrapper)
    defer { kill(first.processIdentifier, SIGKILL) }
    try link.cut()
    try Self.secondRunnerFinishes(c)
    try Self.firstIsFenced(c, first, output) {}
  }

  @Test func aLockAttemptThatTimedOutLeavesNoLockBehind() throws {
    let project = CLIHarness.unique("lt")
    func connect(_ callTimeout: Double = 30) throws -> PostgresState {
      try PostgresState.connect(
        url: S.url, project: project, password: S.password, trust: PostgresTrust(caFile: S.testCA), callTimeout: callTimeout)
    }
    let holder = LockHolder.current(command: "test")
    _ = try connect()  // the schema is there
    // Another session is writing the holder row, uncommitted: the next grant's holder write waits
    // behind it (past the taker's 1 s deadline).
    let blocker = Process()
    blocker.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
    blocker.arguments = [
      "-h", "127.0.0.1", "-p", "54329", "-U", "drover", "-d", "drover", "-c",
      """
      BEGIN; INSERT INTO drover_lock_holders (project, name, pid, host, command, started, backend_pid) VALUES ('\(project)', 'p', 1, 'h', 'c', 0, 0);
      SELECT pg_sleep(20); COMMIT;
      """,
    ]
    blocker.environment = ["PGPASSWORD": S.password, "PATH": "/usr/bin:/bin"]
    blocker.standardOutput = FileHandle.nullDevice
    blocker.standardError = FileHandle.nullDevice
    try blocker.run()
    defer {
      blocker.terminate()
      blocker.waitUntilExit()
    }
    var blocked = false
    for _ in 0..<100 where !blocked {
      Thread.sleep(forTimeInterval: 0.1)
      blocked = (try? S.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND state = 'active' AND pid <> pg_backend_pid()"))?
        .output.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }
    try #require(blocked)
    let slow = try connect(1)
    #expect(throws: Diagnostic.self) { _ = try slow.acquireLock(name: "p", holder: holder, timeout: 0) }
    // Its session was closed with the attempt: the advisory lock it was granted went with it, while
    // the blocker still holds the row.
    let key = Int64(UInt32(ContentDigest.of("drover lock p").hex.prefix(8), radix: 16) ?? 0) & 0x7fff_ffff
    var left = "?"
    for _ in 0..<50 where left != "0" {
      left = (try? S.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = \(key)::oid"))?.output
        .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
      if left != "0" { Thread.sleep(forTimeInterval: 0.1) }
    }
    #expect(left == "0", "no lock outlives the attempt that timed out")
    blocker.terminate()
    blocker.waitUntilExit()
    let third = try connect()
    #expect(try third.acquireLock(name: "p", holder: holder, timeout: 5) != nil, "the lock is free for the next taker")
  }

  /// A session that holds a pool's lock but stopped renewing its lease (stuck in a statement):
  /// `unlock` names it, asks, and ends it with --yes; a live holder is never ended.
  @Test func unlockEndsOnlyAHolderWhoseLeaseRanOut() throws {
    let c = try S.TwoCheckouts(lease: Self.lease)
    defer { c.cleanup() }
    let (first, _) = try Self.heldRollout(c)
    let live = try c.b.run(["unlock", c.pool, "--yes"], environment: S.env)
    #expect(live.status == 1 && live.stderr.contains("whose lease is live"), "\(live.stderr)")
    #expect(first.isRunning, "a live holder is never ended")
    kill(first.processIdentifier, SIGKILL)
    #expect(ProcessLiveness.isGone(first.processIdentifier, within: 30))
    // A stuck holder: a session that takes the pool's advisory lock, says so in the holder row with
    // a lease long run out, and then sits in a statement (never idle, so never ended by the server).
    let k1 = Self.key("drover project " + c.project), k2 = Self.key("drover lock " + c.pool)
    let stuck = Process()
    stuck.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
    stuck.arguments = [
      "-h", "127.0.0.1", "-p", "54329", "-U", "drover", "-d", "drover", "-c", "SELECT pg_advisory_lock(\(k1), \(k2))", "-c",
      """
      INSERT INTO drover_lock_holders (project, name, pid, host, command, started, backend_pid, token, lease, renewed)
        VALUES ('\(c.project)', '\(c.pool)', 4242, 'stuck-host', 'drover apply', 0, pg_backend_pid(), nextval('drover_fence_tokens'), 3,
          extract(epoch from clock_timestamp()) - 100)
        ON CONFLICT (project, name) DO UPDATE SET pid = 4242, host = 'stuck-host', backend_pid = EXCLUDED.backend_pid, token = EXCLUDED.token,
          lease = 3, renewed = EXCLUDED.renewed
      """, "-c", "SELECT pg_sleep(60)",
    ]
    stuck.environment = ["PGPASSWORD": S.password, "PATH": "/usr/bin:/bin"]
    stuck.standardOutput = FileHandle.nullDevice
    stuck.standardError = FileHandle.nullDevice
    try stuck.run()
    defer { if stuck.isRunning { stuck.terminate() } }
    var named = ""
    // Expired once it has sat in its statement for longer than its lease, too.
    for _ in 0..<150 where !named.contains("ran out") {
      Thread.sleep(forTimeInterval: 0.1)
      named = (try? c.b.run(["unlock", c.pool], environment: S.env)).map { $0.stdout + $0.stderr } ?? ""
    }
    #expect(named.contains("stuck-host") && named.contains("standard input is not a terminal"), "asks before ending it: \(named)")
    let ended = try c.b.run(["unlock", c.pool, "--yes"], environment: S.env)
    #expect(ended.status == 0 && ended.stdout.contains("ended database session"), "\(ended.stdout)\(ended.stderr)")
    #expect(ProcessLiveness.isGone(stuck.processIdentifier, within: 10), "its session was terminated")
    let after = try c.b.run(["unlock", c.pool], environment: S.env)
    #expect(after.stdout.contains("is not locked"), "\(after.stdout)\(after.stderr)")
  }

  /// Two `watch` processes, one database (two state folders): one leads, the other stands by.
  /// The leader killed with SIGKILL, and later a leader frozen with SIGSTOP: the other leads within
  /// the lease and a poll, and a node killed during each handover is started exactly once — the
  /// repairs the watches report and the heal ledger's attempts agree. The frozen one, woken, learns
  /// it lost the lead and repairs nothing.
  @Test func aSecondWatchTakesOverWhenTheLeaderIsKilledOrFrozenAndRepairsOnce() throws {
    let c = try S.TwoCheckouts(lease: Self.lease)
    defer { c.cleanup() }
    for h in [c.a, c.b] { try h.writePool(c.pool, replicas: 2, extra: "remediation: {unhealthy_after: 0s, max_unhealthy: 1}\n") }
    #expect(try c.a.run(["apply", "--auto-approve"], environment: S.env).status == 0)
    var started: [Process] = []
    defer { for p in started { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL) } }
    func watch(_ h: CLIHarness) throws -> (Process, OutputCollector) {
      let out = OutputCollector()
      let p = try h.start(["watch", "--interval", "200ms", "--json", "--max-failed-passes", "1000"], environment: S.env, output: out.pipe)
      started.append(p)
      return (p, out)
    }
    let leader = "\"role\":\"leader\"", standby = "\"role\":\"standby\""
    let (first, firstOut) = try watch(c.a)
    #expect(firstOut.wait(for: leader), "\(firstOut.text().suffix(2000))")
    let (second, secondOut) = try watch(c.b)
    #expect(secondOut.wait(for: standby), "\(secondOut.text().suffix(2000))")
    let status = try c.b.run(["watch", "--status"], environment: S.env)
    #expect(status.stdout.contains("leader: pid \(first.processIdentifier) on ") && status.stdout.contains("fencing token"), "\(status.stdout)\(status.stderr)")

    // Killed: its session ends with it; a node dies during the handover.
    kill(first.processIdentifier, SIGKILL)
    let node1 = try #require(try c.a.holder.domain(named: "\(c.pool)-1"))
    try node1.destroy()
    #expect(secondOut.wait(for: leader, within: 30), "the standby took the lead: \(secondOut.text().suffix(2000))")
    #expect(Self.waitRunning(node1), "the new leader started the node")
    Thread.sleep(forTimeInterval: 1.5)
    #expect(Self.repairs(of: "\(c.pool)-1", in: [firstOut, secondOut]) == 1, "started exactly once")

    // Frozen: a third watch stands by, the leader is stopped, a node dies meanwhile.
    let (third, thirdOut) = try watch(c.a)
    #expect(thirdOut.wait(for: standby), "\(thirdOut.text().suffix(2000))")
    kill(second.processIdentifier, SIGSTOP)
    let node2 = try #require(try c.a.holder.domain(named: "\(c.pool)-2"))
    try node2.destroy()
    #expect(thirdOut.wait(for: leader, within: 30), "the standby took the lead from the frozen one: \(thirdOut.text().suffix(2000))")
    #expect(Self.waitRunning(node2))
    let mark = secondOut.text().count
    kill(second.processIdentifier, SIGCONT)
    #expect(secondOut.wait(for: "\"role\":\"lost\"", after: mark, within: 30), "woken, it learns it lost the lead: \(secondOut.text().suffix(2000))")
    #expect(secondOut.wait(for: standby, after: mark, within: 30))
    Thread.sleep(forTimeInterval: 1.5)
    #expect(Self.repairs(of: "\(c.pool)-2", in: [secondOut, thirdOut]) == 1, "started exactly once")
    #expect(try c.b.run(["watch", "--status"], environment: S.env).stdout.contains("leader: pid \(third.processIdentifier) on "))
    // Every line the watches printed, and watch --status --json, match their schemas.
    for out in [firstOut, secondOut, thirdOut] { try JSONContractTests.expectValid("heal-event", out.text()) }
    let statusJSON = try c.b.run(["watch", "--status", "--json"], environment: S.env).stdout
    try JSONContractTests.expectValid("watch-status", statusJSON)
    #expect(statusJSON.contains("\"pid\":\(third.processIdentifier)"), "\(statusJSON)")
    // The shared state agrees: each node was brought back on its own disk, never replaced (no
    // heal rollout in the journal), and no incident is left open in the ledger.
    let heals = try S.sql("SELECT count(*) FROM drover_journal WHERE project = '\(c.project)' AND pool = '\(c.pool)' AND rollout LIKE 'heal-%'").output
    #expect(heals.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "no replacement was journaled: \(heals)")
    let document = try S.sql("SELECT document FROM drover_heal_ledger WHERE project = '\(c.project)' AND pool = '\(c.pool)'").output
    #expect(!document.isEmpty && !document.contains("\"attempts\""), "every incident closed: \(document.prefix(2000))")
  }

  static func waitRunning(_ domain: Domain) -> Bool {
    for _ in 0..<300 {
      if (try? domain.state()) == .running { return true }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return false
  }

  /// Repairs reported done on the domain `name`, across the watches' outputs.
  static func repairs(of name: String, in outputs: [OutputCollector]) -> Int {
    outputs.flatMap { $0.text().split(separator: "\n") }.filter {
      $0.contains("\"event\":\"repair\"") && $0.contains("\"domain\":\"\(name)\"") && $0.contains("\"outcome\":\"done\"")
    }.count
  }

  static func key(_ text: String) -> Int64 { Int64(UInt32(ContentDigest.of(text).hex.prefix(8), radix: 16) ?? 0) & 0x7fff_ffff }
}

/// A process's output read as it comes (a pipe nobody reads would stop the writer).
final class OutputCollector: Sendable {
  let pipe = Pipe()
  final class Buffer: Sendable { let data = Mutex(Data()) }
  private let buffer = Buffer()

  init() {
    let handle = pipe.fileHandleForReading, buffer = self.buffer
    Thread.detachNewThread {
      while true {
        let chunk = handle.availableData
        if chunk.isEmpty { return }
        buffer.data.withLock { $0.append(chunk) }
      }
    }
  }

  func text() -> String { String(decoding: buffer.data.withLock { $0 }, as: UTF8.self) }

  /// Waits (bounded) until the output holds `needle` after `from` characters.
  func wait(for needle: String, after from: Int = 0, within seconds: Double = 30) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    repeat {
      if String(text().dropFirst(from)).contains(needle) { return true }
      Thread.sleep(forTimeInterval: 0.05)
    } while Date() < end
    return false
  }
}

/// A runner reaches the test PostgreSQL only through a network namespace and a veth pair: inside
/// the namespace a forwarder listens on 127.0.0.1:54329 (so the server's certificate still names
/// the address the runner dials) and sends each connection over the veth to a forwarder on the
/// host, which passes it to the server. `cut` takes the host's end of the link down: the runner's
/// packets go nowhere, and the server sees an idle session (its lease runs out).
final class Partition {
  let name = "drvpart\(getpid() % 100_000)"
  let hostSide: String
  let subnet: Int
  var wrapper: [String] { ["/usr/sbin/ip", "netns", "exec", name] }
  private var forwarders: [Process] = []

  init() throws {
    hostSide = "vh\(getpid() % 100_000)"
    subnet = Int(getpid() % 200) + 20
    let script = FileManager.default.temporaryDirectory.appendingPathComponent("drover-forward-\(getpid()).py").path
    try Self.forwarder.write(toFile: script, atomically: true, encoding: .utf8)
    remove()
    for command in [
      ["netns", "add", name],
      ["link", "add", hostSide, "type", "veth", "peer", "name", "vn\(getpid() % 100_000)"],
      ["link", "set", "vn\(getpid() % 100_000)", "netns", name],
      ["addr", "add", "10.231.\(subnet).1/30", "dev", hostSide],
      ["link", "set", hostSide, "up"],
      ["netns", "exec", name, "ip", "addr", "add", "10.231.\(subnet).2/30", "dev", "vn\(getpid() % 100_000)"],
      ["netns", "exec", name, "ip", "link", "set", "vn\(getpid() % 100_000)", "up"],
      ["netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ] {
      let done = try ToolProcess.run("/usr/sbin/ip", command)
      guard done.status == 0 else { throw Diagnostic.error("test.netns", "ip \(command.joined(separator: " ")): \(done.output)") }
    }
    forwarders.append(try Self.start(["/usr/bin/python3", script, "10.231.\(subnet).1", "54329", "127.0.0.1", "54329"]))
    forwarders.append(
      try Self.start(["/usr/sbin/ip", "netns", "exec", name, "/usr/bin/python3", script, "127.0.0.1", "54329", "10.231.\(subnet).1", "54329"]))
    // Ready once a connection through both forwarders reaches the server.
    for _ in 0..<100 {
      let probe = try ToolProcess.run(
        "/usr/sbin/ip", ["netns", "exec", name, "/usr/bin/psql", "-h", "127.0.0.1", "-p", "54329", "-U", "drover", "-d", "drover", "-Atc", "SELECT 1"],
        environment: ["PGPASSWORD": SharedStateCLITests.password, "PATH": "/usr/bin:/bin"])
      if probe.status == 0 { return }
      Thread.sleep(forTimeInterval: 0.1)
    }
    throw Diagnostic.error("test.netns", "the forwarders never carried a connection")
  }

  static func start(_ command: [String]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: command[0])
    p.arguments = Array(command.dropFirst())
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
  }

  func cut() throws {
    let done = try ToolProcess.run("/usr/sbin/ip", ["link", "set", hostSide, "down"])
    #expect(done.status == 0, "\(done.output)")
  }

  func remove() {
    for p in forwarders where p.isRunning {
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
    }
    forwarders = []
    _ = try? ToolProcess.run("/usr/sbin/ip", ["netns", "pids", name]).output.split(separator: "\n").compactMap { Int32($0) }.map { kill($0, SIGKILL) }
    _ = try? ToolProcess.run("/usr/sbin/ip", ["link", "del", hostSide])
    _ = try? ToolProcess.run("/usr/sbin/ip", ["netns", "del", name])
  }

  /// A TCP forwarder: listen on (argv 1, 2), pass each connection to (argv 3, 4), both ways.
  static let forwarder = """
    import socket, sys, threading
    host, port, to_host, to_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(64)
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((to_host, to_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
    """
}
