import DroverBasics
import Foundation
import Testing

/// #21 against a real PostgreSQL server (`scripts/postgres-test`: Debian's postgresql-15 in its own
/// data folder on 127.0.0.1:54329), through the built binary, with two checkouts of one project:
/// their applies exclude each other, the holder is named, `kill -9` of the holder frees the lock
/// at once, a rollout started from one checkout is resumed from the other, and a database that
/// drops the session mid-rollout is a clear error the next apply recovers from.
@Suite(.enabled(if: TestPostgres.answers, "needs the test PostgreSQL on 127.0.0.1:54329 (bash scripts/setup)"))
struct SharedStateCLITests {
  static let url = ProcessInfo.processInfo.environment["DROVER_TEST_POSTGRES"] ?? "postgres://drover@127.0.0.1:54329/drover"
  static let password = ProcessInfo.processInfo.environment["DROVER_TEST_POSTGRES_PASSWORD"] ?? "drover-test"
  static var env: [String: String] { ["DROVER_STATE_PASSWORD": password] }
  /// The test server's CA (`scripts/postgres-test`), and a CA that signed nothing there.
  static let testCA = "/var/lib/drover/postgres-test-tls/ca.pem"
  static let otherCA = "/var/lib/drover/postgres-test-tls/other-ca.pem"

  /// The project of `h` keeps its state in the database at `url`; its machine reaches that
  /// server as `entry` says (by default: verified TLS with the test CA).
  static func useDatabase(_ h: CLIHarness, project: String? = nil, url: String = Self.url, entry: String? = nil, lease: String? = nil) throws {
    try "project: \(project ?? h.project)\nstate: {backend: postgres, url: \"\(url)\"\(lease.map { ", lease: \($0)" } ?? "")}\n".write(
      to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let server = URLComponents(string: url).map { "\($0.host ?? ""):\($0.port ?? 5432)" } ?? ""
    try "state:\n  \"\(server)\": \(entry ?? "{ca: \(testCA)}")\n".write(
      to: h.dir.appendingPathComponent("machine-config.yaml"), atomically: true, encoding: .utf8)
  }

  /// Two checkouts (folders) of one project whose state is the shared database.
  final class TwoCheckouts {
    let a: CLIHarness
    let b: CLIHarness
    let project: String
    let pool: String
    let spec: String

    init(url: String = SharedStateCLITests.url, lease: String? = nil) throws {
      a = try CLIHarness()
      b = try CLIHarness()
      project = a.project
      pool = CLIHarness.unique("ss")
      for h in [a, b] { try SharedStateCLITests.useDatabase(h, project: project, url: url, lease: lease) }
      // The health check waits while `hold` exists in checkout a, until `gate` appears there.
      let script = a.dir.appendingPathComponent("health.sh").path
      try """
        #!/bin/sh
        env > "\(a.dir.path)/env-$$.txt"
        if [ -e "\(a.dir.path)/hold" ]; then touch "\(a.dir.path)/held"; while [ ! -e "\(a.dir.path)/gate" ]; do sleep 0.05; done; fi
        exit 0
        """.write(toFile: script, atomically: true, encoding: .utf8)
      chmod(script, 0o755)
      spec = "health: [{type: command, command: [\"\(script)\"], timeout: 60s, interval: 100ms, retries: 0}]\nupgrade: {canary: 1, waves: [1], max_surge: 1, max_unavailable: 0, health_timeout: 60s}\n"
      try write(image: "demo@v1")
    }

    func write(image: String, replicas: Int = 2) throws {
      for h in [a, b] { try h.writePool(pool, replicas: replicas, image: image, extra: spec) }
    }

    func hold() throws { try "".write(to: a.dir.appendingPathComponent("hold"), atomically: true, encoding: .utf8) }
    /// Waits (bounded) until a health check is in the hold.
    func waitHeld() -> Bool {
      for _ in 0..<600 {
        if FileManager.default.fileExists(atPath: a.dir.appendingPathComponent("held").path) { return true }
        Thread.sleep(forTimeInterval: 0.05)
      }
      return false
    }

    func open() throws { try "".write(to: a.dir.appendingPathComponent("gate"), atomically: true, encoding: .utf8) }

    /// `drover apply` in checkout a, in the background.
    func startApply(output: Pipe? = nil, wrapper: [String] = []) throws -> Process {
      try a.start(["apply", "--auto-approve"], environment: SharedStateCLITests.env, output: output, wrapper: wrapper)
    }

    /// Nodes on v1, then an apply to v2 started in checkout a whose first health check holds
    /// (until `open`), once checkout b sees the pool locked: the apply and what status said.
    func startHeldRollout(output: Pipe? = nil, wrapper: [String] = []) throws -> (apply: Process, status: String) {
      #expect(try a.run(["apply", "--auto-approve"], environment: SharedStateCLITests.env).status == 0)
      try write(image: "demo@v2")
      try hold()
      let apply = try startApply(output: output, wrapper: wrapper)
      return (apply, try waitLocked())
    }

    /// Waits (bounded) until checkout b sees the pool locked by a named holder; returns what
    /// `rollout status` said. (Between taking the advisory lock and writing its holder row, the
    /// lock reads as held by "(starting)": that moment is not the holder yet.)
    func waitLocked() throws -> String {
      for _ in 0..<300 {
        let status = try b.run(["rollout", "status", pool], environment: SharedStateCLITests.env)
        if status.stdout.contains("locked by"), !status.stdout.contains("(starting)") { return status.stdout }
        Thread.sleep(forTimeInterval: 0.1)
      }
      return ""
    }

    /// Both checkouts' pool with `remediation`, applied from checkout a; node 1 destroyed, then
    /// `heal` run in checkout a: what it said.
    func healADestroyedNode(remediation: String) throws -> CLIHarness.Run {
      for h in [a, b] { try h.writePool(pool, replicas: 2, extra: spec + remediation) }
      #expect(try a.run(["apply", "--auto-approve"], environment: SharedStateCLITests.env).status == 0)
      try a.holder.domain(named: "\(pool)-1")?.destroy()
      return try a.run(["heal"], environment: SharedStateCLITests.env)
    }

    func cleanup() {
      try? write(image: "demo@v1", replicas: 0)
      _ = try? b.run(["rollout", "abort", pool], environment: SharedStateCLITests.env)
      _ = try? b.run(["apply", "--auto-approve"], environment: SharedStateCLITests.env)
      _ = try? FileManager.default.removeItem(atPath: "/var/lib/drover/state/\(project)")
    }
  }

  @Test func twoCheckoutsExcludeEachOtherTheHolderIsNamedAndKill9FreesTheLock() throws {
    let c = try TwoCheckouts()
    defer { c.cleanup() }
    let (first, status) = try c.startHeldRollout()
    #expect(status.contains("locked by pid \(first.processIdentifier) on ") && status.contains("running '"), "the holder is named: \(status)")
    let second = try c.b.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(second.status == 1 && second.stderr.contains("is locked by pid \(first.processIdentifier)"), "\(second.stderr)")
    kill(first.processIdentifier, SIGKILL)
    // (Foundation's waitUntilExit can miss a child killed from outside: poll instead.)
    #expect(ProcessLiveness.isGone(first.processIdentifier, within: 30))
    // The killed holder's session is gone with it: the lock is free at once (no wait, no unlock).
    try c.open()
    let resumed = try c.b.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(!resumed.stderr.contains("is locked by"), "\(resumed.stderr)")
    let finished = try resumed.status == 0 || c.b.run(["apply", "--auto-approve"], environment: Self.env).status == 0
    #expect(finished)
    let history = try c.a.run(["rollout", "history", "--json", c.pool], environment: Self.env)
    #expect(history.stdout.contains("\"status\":\"completed\""), "read from the database by the other checkout: \(history.stdout)")
  }

  @Test func aRolloutStartedInOneCheckoutIsResumedFromTheOther() throws {
    let c = try TwoCheckouts()
    defer { c.cleanup() }
    #expect(try c.a.run(["apply", "--auto-approve"], environment: Self.env).status == 0)
    try c.write(image: "demo@v2")
    let killed = try c.a.run(["apply", "--auto-approve"], environment: Self.env.merging(["DROVER_CRASH_AT": "step-done:create"]) { $1 })
    #expect(killed.status != 0)
    let status = try c.b.run(["rollout", "status", "--json", c.pool], environment: Self.env)
    #expect(status.stdout.contains("\"status\" : \"running\"") || status.stdout.contains("\"status\":\"running\""), "checkout b sees a's rollout: \(status.stdout)")
    let resumed = try c.b.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(resumed.status == 0 && resumed.stdout.contains("resuming rollout"), "\(resumed.stdout)\(resumed.stderr)")
    let nodes = try c.a.holder.allDomains().filter { $0.name.hasPrefix(c.pool + "-") }
    #expect(nodes.count == 2, "one domain per index, no duplicate: \(nodes.map(\.name))")
    // The health checks ran without the state database's password in their environment.
    let dumps = try FileManager.default.contentsOfDirectory(atPath: c.a.dir.path).filter { $0.hasPrefix("env-") }
    #expect(!dumps.isEmpty)
    for dump in dumps {
      let text = try String(contentsOfFile: c.a.dir.appendingPathComponent(dump).path, encoding: .utf8)
      #expect(!text.contains("DROVER_STATE_PASSWORD") && !text.contains(Self.password), "a check saw the password")
    }
    #expect(try c.a.run(["plan", "--detailed-exitcode"], environment: Self.env).status == 0)
  }

  /// #40: the password comes from Drover's own variable only. `PGPASSWORD`, which a machine may
  /// hold for another database and its tools, is never sent: alone, the server refuses the
  /// session and the error names the variable Drover reads.
  @Test func pgpasswordAloneIsNeverUsed() throws {
    try #require(ProcessInfo.processInfo.environment["DROVER_STATE_PASSWORD"] == nil, "the test needs an environment without it")
    let h = try CLIHarness()
    let pool = CLIHarness.unique("pgp")
    try Self.useDatabase(h)
    try h.writePool(pool, replicas: 1)
    let refused = try h.run(["rollout", "status", pool], environment: ["PGPASSWORD": Self.password])
    #expect(refused.status != 0 && refused.stderr.contains("DROVER_STATE_PASSWORD"), "\(refused.stdout)\(refused.stderr)")
    let allowed = try h.run(["rollout", "status", pool], environment: Self.env)
    #expect(allowed.status == 0, "\(allowed.stdout)\(allowed.stderr)")
  }

  /// #40: without `DROVER_STATE_PASSWORD`, the password comes from the state entry's
  /// `password_file` — only when nobody else can read it.
  @Test func thePasswordFileIsUsedOnlyWhenPrivate() throws {
    try #require(ProcessInfo.processInfo.environment["DROVER_STATE_PASSWORD"] == nil, "the test needs an environment without it")
    let h = try CLIHarness()
    let pool = CLIHarness.unique("pwf")
    try h.writePool(pool, replicas: 1)
    let file = h.dir.appendingPathComponent("db-password").path
    try "\(Self.password)\n".write(toFile: file, atomically: true, encoding: .utf8)
    try Self.useDatabase(h, entry: "{ca: \(Self.testCA), password_file: \(file)}")
    chmod(file, 0o644)
    let open = try h.run(["rollout", "status", pool])
    #expect(open.status != 0 && open.stderr.contains("refusing the state password file") && open.stderr.contains("mode 644"), "\(open.stderr)")
    chmod(file, 0o600)
    let private_ = try h.run(["rollout", "status", pool])
    #expect(private_.status == 0, "\(private_.stdout)\(private_.stderr)")
  }

  /// #40: `drover state init` gives each project its own database and role. Project A's
  /// credentials cannot open project B's database (so cannot read, write or lock anything there:
  /// advisory locks and pg_locks are per database); a second init changes nothing; each project
  /// runs on its own database.
  @Test func eachProjectHasItsOwnDatabaseNoOtherProjectCanEnter() throws {
    let a = try CLIHarness(), b = try CLIHarness()
    let admin = "postgres://drover_admin@127.0.0.1:54329/postgres"
    let adminEnv = ["DROVER_STATE_ADMIN_PASSWORD": "drover-admin-test"]
    let names = [a.project, b.project].map { "drover_" + $0.lowercased().replacingOccurrences(of: "-", with: "_") }
    func psql(user: String, password: String, database: String, _ statement: String) throws -> (status: Int32, output: String) {
      try ToolProcess.run(
        "/usr/bin/psql",
        ["host=127.0.0.1 port=54329 user=\(user) dbname=\(database) sslmode=verify-full sslrootcert=\(Self.testCA)", "-Atc", statement],
        environment: ["PGPASSWORD": password, "PATH": "/usr/bin:/bin"])
    }
    defer {
      for name in names {
        _ = try? psql(user: "drover_admin", password: "drover-admin-test", database: "postgres", "DROP DATABASE IF EXISTS \(name)")
        _ = try? psql(user: "drover_admin", password: "drover-admin-test", database: "postgres", "DROP ROLE IF EXISTS \(name)")
      }
    }
    for (h, password) in [(a, "pw-a"), (b, "pw-b")] {
      try Self.useDatabase(h)  // the machine's entry: the test CA
      let created = try h.run(["state", "init", "--admin-url", admin], environment: adminEnv.merging(["DROVER_STATE_NEW_PASSWORD": password]) { $1 })
      #expect(created.status == 0 && created.stdout.contains(": created") && !created.stdout.contains(password), "\(created.stdout)\(created.stderr)")
      let again = try h.run(["state", "init", "--admin-url", admin], environment: adminEnv.merging(["DROVER_STATE_NEW_PASSWORD": "changed"]) { $1 })
      #expect(again.status == 0 && again.stdout.contains("exists (its password unchanged)") && again.stdout.contains(": exists,"), "\(again.stdout)\(again.stderr)")
    }
    // Each role in its own database; never in the other's.
    #expect(try psql(user: names[0], password: "pw-a", database: names[0], "SELECT 1").output.hasPrefix("1"))
    // Read, write and lock, each tried as A in B's database: each refused by the server.
    for attempt in ["SELECT count(*) FROM drover_journal", "INSERT INTO drover_journal (project) VALUES ('x')", "SELECT pg_advisory_lock(1, 2)"] {
      let intrusion = try psql(user: names[0], password: "pw-a", database: names[1], attempt)
      #expect(intrusion.status != 0 && intrusion.output.contains("permission denied for database"), "\(attempt): \(intrusion.output)")
    }
    // Drover as project A pointed at B's database is refused by the server too; on its own it runs.
    let pool = CLIHarness.unique("own")
    try a.writePool(pool, replicas: 1)
    defer {
      try? a.writePool(pool, replicas: 0)
      _ = try? a.run(["apply", "--auto-approve"], environment: ["DROVER_STATE_PASSWORD": "pw-a"])
    }
    try Self.useDatabase(a, url: "postgres://\(names[0])@127.0.0.1:54329/\(names[1])")
    let refused = try a.run(["apply", "--auto-approve"], environment: ["DROVER_STATE_PASSWORD": "pw-a"])
    #expect(refused.status != 0 && refused.stderr.contains("cannot connect to the state database"), "\(refused.stderr)")
    try Self.useDatabase(a, url: "postgres://\(names[0])@127.0.0.1:54329/\(names[0])")
    let own = try a.run(["apply", "--auto-approve"], environment: ["DROVER_STATE_PASSWORD": "pw-a"])
    #expect(own.status == 0, "\(own.stdout)\(own.stderr)")
    let tables = try psql(user: names[0], password: "pw-a", database: names[0], "SELECT count(*) FROM drover_lock_holders")
    #expect(tables.status == 0, "Drover's tables were made in the project's own database: \(tables.output)")
  }

  /// #40: the test server's socket lets no other user in. `nobody` cannot reach it at all (its
  /// folder is the postgres user's alone), and even root is not the `postgres` role there: the
  /// socket authenticates by peer, never "trust".
  @Test func theTestServersSocketLetsNoOtherUserIn() throws {
    let sockets = "/var/lib/drover/postgres-test-sockets"
    let query = "psql -h \(sockets) -p 54329 -U postgres -d postgres -Atc 'select 4242'"
    let asNobody = try ToolProcess.run("/usr/bin/su", ["-s", "/bin/sh", "nobody", "-c", query], environment: ["PATH": "/usr/bin:/bin"])
    #expect(asNobody.status != 0 && !asNobody.output.contains("4242"), "\(asNobody.output)")
    let asRoot = try ToolProcess.run("/bin/sh", ["-c", query], environment: ["PATH": "/usr/bin:/bin"])
    #expect(asRoot.status != 0 && asRoot.output.contains("Peer authentication failed"), "\(asRoot.output)")
    // The server's own user still administers it (what scripts/postgres-test does).
    let asPostgres = try ToolProcess.run("/usr/bin/su", ["-s", "/bin/sh", "postgres", "-c", query], environment: ["PATH": "/usr/bin:/bin"])
    #expect(asPostgres.status == 0 && asPostgres.output.contains("4242"), "\(asPostgres.output)")
  }

  /// Runs one SQL statement on the test database as Drover's role; its output.
  static func sql(_ statement: String) throws -> (status: Int32, output: String) {
    try ToolProcess.run(
      "/usr/bin/psql", ["-h", "127.0.0.1", "-p", "54329", "-U", "drover", "-d", "drover", "-Atc", statement],
      environment: ["PGPASSWORD": Self.password, "PATH": "/usr/bin:/bin"])
  }

  /// #38, the forgery the review found: with nothing but access to the state database, one
  /// `INSERT` — a copy of a real heal's `rollout-started` row under a new number and a new id, its
  /// seal kept or dropped, or the row's detail edited — never makes `heal` or `apply` act: each
  /// is refused by name, the protected pool's nodes and disks stay as they are.
  @Test func aForgedJournalRowInTheDatabaseIsNeverActedOn() throws {
    let c = try TwoCheckouts()
    defer {
      _ = try? Self.sql("DELETE FROM drover_journal WHERE project = '\(c.project)' AND rollout LIKE '%forged%'")
      c.cleanup()
    }
    let remediation = "remediation: {unhealthy_after: 0s, max_unhealthy: 1, actions: [replace]}\n"
    let healed = try c.healADestroyedNode(remediation: remediation)
    #expect(healed.status == 0, "a real heal, sealed in the database: \(healed.stdout)\(healed.stderr)")
    for h in [c.a, c.b] { try h.writePool(c.pool, replicas: 2, extra: c.spec + remediation + "protect: true\n") }
    let names = try c.a.holder.allDomains().filter { $0.name.hasPrefix(c.pool + "-") }.map { "\($0.name)=\($0.uuid)" }.sorted()
    #expect(try Self.sql("SELECT count(*) FROM drover_journal WHERE project = '\(c.project)' AND mac IS NULL").output.hasPrefix("0"), "every row sealed")
    let copy = """
      INSERT INTO drover_journal (project, pool, seq, time, rollout, event, node, step, detail, mac)
      SELECT project, pool, (SELECT max(seq) + 1 FROM drover_journal WHERE project = '\(c.project)' AND pool = '\(c.pool)'), time,
        rollout || '-forged', event, node, step, %DETAIL%, %MAC% FROM drover_journal
      WHERE project = '\(c.project)' AND pool = '\(c.pool)' AND event = 'rollout-started' AND rollout LIKE 'heal-%'
      """
    for (detail, mac, why) in [
      ("detail", "mac", "does not verify"), ("detail", "NULL", "has no seal, after sealed records"),
      ("replace(detail, 'generation\":2', 'generation\":3')", "mac", "does not verify"),
    ] {
      let inserted = try Self.sql(copy.replacingOccurrences(of: "%DETAIL%", with: detail).replacingOccurrences(of: "%MAC%", with: mac))
      #expect(inserted.status == 0 && inserted.output.contains("INSERT 0 1"), "\(inserted.output)")
      for command in [["heal"], ["apply", "--auto-approve"]] {
        let run = try c.b.run(command, environment: Self.env)
        #expect(run.status == 1 && run.stderr.contains("of pool \(c.pool)") && run.stderr.contains(why) && run.stderr.contains("nothing in this journal is acted on"), "\(command): \(run.stdout)\(run.stderr)")
      }
      #expect(try c.a.holder.allDomains().filter { $0.name.hasPrefix(c.pool + "-") }.map { "\($0.name)=\($0.uuid)" }.sorted() == names, "no node touched")
      _ = try Self.sql("DELETE FROM drover_journal WHERE project = '\(c.project)' AND rollout LIKE '%forged%'")
    }
    #expect(try c.b.run(["heal"], environment: Self.env).status == 0, "the genuine journal verifies")
  }

  /// #36: with a state database, the heal ledger — which rungs each incident tried — is a row
  /// there, not a file: a second checkout sees that `start` was tried and does not try it again;
  /// a row edited by hand (a rung changed, to hurry the ladder on) is read as no ledger at all.
  @Test func theHealLedgerIsASealedRowSharedByEveryCheckout() throws {
    let c = try TwoCheckouts()
    let row = "FROM drover_heal_ledger WHERE project = '\(c.project)' AND pool = '\(c.pool)'"
    defer {
      _ = try? Self.sql("DELETE \(row)")
      c.cleanup()
    }
    let healed = try c.healADestroyedNode(remediation: "remediation: {unhealthy_after: 1h, max_unhealthy: 1}\n")
    #expect(healed.status == 0 && healed.stdout.contains("start \(c.pool)-1: done"), "\(healed.stdout)\(healed.stderr)")
    let stored = try Self.sql("SELECT document \(row)")
    #expect(stored.status == 0 && stored.output.contains("\"rung\":\"start\"") && stored.output.contains("\"mac\":"), "\(stored.output)")
    #expect(!FileManager.default.fileExists(atPath: "/var/lib/drover/state/\(c.project)/health/\(c.pool).json"), "no file beside the row")

    // The node stops again within the incident: the other checkout knows start was tried.
    try c.a.holder.domain(named: "\(c.pool)-1")?.destroy()
    let seen = try c.b.run(["heal", "--dry-run", "--json"], environment: Self.env)
    #expect(!seen.stdout.contains("\"action\":\"start\""), "start was tried in this incident: \(seen.stdout)\(seen.stderr)")
    // Edited by hand: the seal no longer verifies, so the ledger is empty and the ladder starts again.
    #expect(try Self.sql("UPDATE drover_heal_ledger SET document = replace(document, '\"rung\":\"start\"', '\"rung\":\"resume\"') WHERE project = '\(c.project)' AND pool = '\(c.pool)'").status == 0)
    let forged = try c.b.run(["heal", "--dry-run", "--json"], environment: Self.env)
    #expect(forged.stdout.contains("\"action\":\"start\""), "\(forged.stdout)\(forged.stderr)")
  }

  /// #37, #34: `watch` as a service. Its state database is a real PostgreSQL server stopped and
  /// started under it: while it is down every pass fails and is counted; once it is back the next
  /// pass (a fresh state session: no process-wide one) reconnects and heals a node that died
  /// meanwhile. With the database down for good, watch exits 1 after --max-failed-passes.
  @Test func watchReconnectsAfterItsDatabaseWentAwayAndExitsWhenItStaysAway() throws {
    // Its own PostgreSQL server (scripts/setup makes it), restarted for real: the suites that
    // share the other one are never cut off.
    let server = RestartablePostgres()
    try server.start()
    let h = try CLIHarness()
    let pool = CLIHarness.unique("wr")
    try Self.useDatabase(h, url: server.url)
    try h.writePool(pool, replicas: 2, extra: "remediation: {unhealthy_after: 0s, max_unhealthy: 1}\n")
    defer {
      try? server.start()
      try? SharedStateCLITests.useDatabase(h)
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"], environment: Self.env)
      _ = try? FileManager.default.removeItem(atPath: "/var/lib/drover/state/\(h.project)")
    }
    #expect(try h.run(["apply", "--auto-approve"], environment: Self.env).status == 0)
    let watch = try h.start(["watch", "--interval", "200ms", "--max-failed-passes", "1000"], environment: Self.env)
    defer {
      watch.terminate()
      watch.waitUntilExit()
    }
    Thread.sleep(forTimeInterval: 1)
    // The server stops (every session cut, connections refused), a node dies meanwhile.
    try server.stop()
    let node = try #require(try h.holder.domain(named: "\(pool)-1"))
    try node.destroy()
    Thread.sleep(forTimeInterval: 1.5)
    #expect(try node.state() == .shutoff, "no pass can heal while its state is unreachable")
    // The server starts again: the next pass connects afresh and starts the node on its own disk.
    try server.start()
    var healed = false
    for _ in 0..<150 where !healed {
      Thread.sleep(forTimeInterval: 0.1)
      healed = (try? node.state()) == .running
    }
    #expect(healed, "watch healed again once its database was back")
    #expect(watch.isRunning, "a few failed passes are no reason to stop")
    watch.terminate()
    watch.waitUntilExit()
    // Down for good: three failed passes in a row, then exit 1 for the service manager.
    try server.stop()
    let failing = Pipe()
    let stopped = try h.start(["watch", "--interval", "100ms", "--max-failed-passes", "3"], environment: Self.env, output: failing)
    #expect(ProcessLiveness.isGone(stopped.processIdentifier, within: 60), "watch gave up")
    // (Never wait on one that did not: its output would fill the pipe nobody reads yet.)
    if stopped.isRunning { kill(stopped.processIdentifier, SIGKILL) }
    stopped.waitUntilExit()
    let said = String(decoding: failing.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(stopped.terminationStatus == 1 && said.contains("3 heal passes in a row could not read their state or a host"), "\(said.suffix(2000))")
    try server.start()
  }

  /// The test server `watch` is run against and restarted: `scripts/postgres-test` with its own
  /// data folder and port (made by scripts/setup), stopped and started with pg_ctl.
  struct RestartablePostgres {
    let data = "/var/lib/drover/postgres-restart"
    let port = 54339
    var url: String { "postgres://drover@127.0.0.1:\(port)/drover" }
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("scripts/postgres-test").path

    /// Starts it (idempotent: a running server is left as it is). Through Drover's own child
    /// runner (output in files, the child waited for by pid): the server it starts lives on.
    func start() throws {
      let started = ChildProcess.run(["/bin/bash", Self.script], environment: ["DROVER_PG_DATA": data, "DROVER_PG_PORT": "\(port)"], timeout: 120)
      guard case .success(let finished) = started else { throw POSIXError(.ECHILD) }
      #expect(finished.status == 0, "\(finished.output)")
    }

    /// Stops it at once (a fast shutdown: every session is cut; `immediate`: no goodbye at all).
    func stop(mode: String = "fast") throws {
      let stopped = try ToolProcess.run(
        "/bin/su", ["-s", "/bin/sh", "postgres", "-c", "/usr/lib/postgresql/15/bin/pg_ctl -D \(data) -m \(mode) -w stop"])
      #expect(stopped.status == 0, "\(stopped.output)")
      #expect(!TestPostgres.accepts(port: port), "the server is down")
    }
  }

  /// The database drops the apply's session while a node's health check runs: the next journal
  /// write fails, the apply stops with a clear error, and nothing was done that the journal does
  /// not know about — the next apply finishes the rollout.
  @Test func aSessionDroppedMidRolloutIsAClearErrorAndTheNextApplyRecovers() throws {
    let c = try TwoCheckouts()
    defer { c.cleanup() }
    let (first, _) = try c.startHeldRollout()
    let terminated = try Self.sql("SELECT pg_terminate_backend(backend_pid) FROM drover_lock_holders WHERE project = '\(c.project)'")
    #expect(terminated.status == 0, "\(terminated.output)")
    try c.open()
    #expect(ProcessLiveness.isGone(first.processIdentifier, within: 60), "the apply stopped")
    try FileManager.default.removeItem(at: c.a.dir.appendingPathComponent("hold"))
    let next = try c.b.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
    #expect(try c.a.holder.allDomains().filter { $0.name.hasPrefix(c.pool + "-") }.count == 2)
    #expect(try c.b.run(["plan", "--detailed-exitcode"], environment: Self.env).status == 0)
  }

  /// `state migrate --to postgres`: a project's local journal (a finished rollout and one a
  /// kill -9 left in progress) is copied once; the database then resumes the rollout.
  @Test func aLocalJournalIsMigratedAndItsRolloutResumedFromTheDatabase() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("mg")
    defer {
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"], environment: Self.env)
    }
    // The health check waits while `hold` exists, until `gate` appears.
    let script = h.dir.appendingPathComponent("health.sh").path
    try """
      #!/bin/sh
      if [ -e "\(h.dir.path)/hold" ]; then while [ ! -e "\(h.dir.path)/gate" ]; do sleep 0.05; done; fi
      exit 0
      """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    let health = "health: [{type: command, command: [\"\(script)\"], timeout: 60s, interval: 100ms, retries: 0}]\n"
    try h.writePool(pool, replicas: 2, extra: health)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 2, image: "demo@v2", extra: health)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: health)
    #expect(try h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:create"]).status != 0)
    // An apply still on the local state resumes the rollout and holds the pool's local lock.
    try "".write(to: h.dir.appendingPathComponent("hold"), atomically: true, encoding: .utf8)
    let local = try h.start(["apply", "--auto-approve"])
    var locked = false
    for _ in 0..<300 where !locked {
      locked = try h.run(["rollout", "status", pool]).stdout.contains("locked by")
      if !locked { Thread.sleep(forTimeInterval: 0.1) }
    }
    #expect(locked)
    // The local key goes with the project: the database holds only locks and journals.
    try Self.useDatabase(h, url: Self.url)
    let keyDir = "/var/lib/drover/state/\(h.project)"
    try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
    try? FileManager.default.removeItem(atPath: keyDir + "/key")
    try FileManager.default.copyItem(atPath: h.dir.appendingPathComponent(".drover/key").path, toPath: keyDir + "/key")
    defer { try? FileManager.default.removeItem(atPath: keyDir) }
    // Not while that apply writes the local journal: the copy would miss what it writes next.
    let busy = try h.run(["state", "migrate", "--to", "postgres", "--from", ".drover"], environment: Self.env)
    #expect(busy.status == 1 && busy.stderr.contains("pool \(pool) is locked by pid \(local.processIdentifier)"), "\(busy.stdout)\(busy.stderr)")
    kill(local.processIdentifier, SIGKILL)
    #expect(ProcessLiveness.isGone(local.processIdentifier, within: 30))
    try? FileManager.default.removeItem(at: h.dir.appendingPathComponent("hold"))
    let migrate = try h.run(["state", "migrate", "--to", "postgres", "--from", ".drover"], environment: Self.env)
    #expect(migrate.status == 0 && migrate.stdout.contains("pool \(pool): "), "\(migrate.stdout)\(migrate.stderr)")
    let again = try h.run(["state", "migrate", "--to", "postgres", "--from", ".drover"], environment: Self.env)
    #expect(again.status == 1 && again.stderr.contains("already has a journal"), "copied once: \(again.stderr)")
    let history = try h.run(["rollout", "history", "--json", pool], environment: Self.env)
    #expect(history.stdout.contains("\"status\":\"completed\"") && history.stdout.contains("\"status\":\"running\""), "\(history.stdout)")
    let resumed = try h.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(resumed.status == 0 && resumed.stdout.contains("resuming rollout"), "\(resumed.stdout)\(resumed.stderr)")
  }

  /// #21.5: bake's default host is `LIBVIRT_DEFAULT_URI`, as for virsh (a dead one named in the error).
  @Test func bakeHonoursLibvirtDefaultURI() throws {
    let h = try CLIHarness()
    let uri = "test+unix:///default?socket=/nonexistent/drover-default-uri-sock"
    let run = try h.run(["bake"], environment: ["LIBVIRT_DEFAULT_URI": uri])
    #expect(run.status != 0 && run.stderr.contains("drover-default-uri-sock") && run.stderr.contains("cannot connect"), "\(run.stderr)")
    let flag = try h.run(["bake", "--host", "test+unix:///default?socket=/nonexistent/flag-sock"], environment: ["LIBVIRT_DEFAULT_URI": uri])
    #expect(flag.stderr.contains("flag-sock") && !flag.stderr.contains("drover-default-uri-sock"), "--host wins: \(flag.stderr)")
  }

  @Test func aPasswordInTheProjectFileIsRefused() throws {
    let h = try CLIHarness()
    try "project: \(h.project)\nstate: {backend: postgres, url: \"postgres://drover:secret@127.0.0.1:54329/drover\"}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let run = try h.run(["plan"])
    #expect(run.status != 0 && run.stderr.contains("state.url holds a password") && run.stderr.contains("DROVER_STATE_PASSWORD"), "\(run.stderr)")
  }

  /// A URL asking for a weaker TLS mode than verified (`require`: encrypted to whoever answers)
  /// is refused, never quietly taken.
  @Test func aURLAskingForUnverifiedTLSIsRefused() throws {
    let h = try CLIHarness()
    try Self.useDatabase(h, url: Self.url + "?sslmode=require")
    try h.writePool(CLIHarness.unique("tl"), replicas: 1)
    let run = try h.run(["apply", "--auto-approve"], environment: Self.env)
    #expect(run.status != 0 && run.stderr.contains("sslmode=require") && run.stderr.contains("sslmode=verify-full"), "\(run.stderr)")
  }

  /// #40: the state database is reached over TLS verified against the CA of the machine's state
  /// entry. A wrong CA, a name the certificate does not hold, and plaintext the machine does not
  /// allow are each refused before any query (no journal row, no lock); `insecure: true` is
  /// plaintext with a warning on every run.
  @Test func theStateDatabaseIsReachedOverVerifiedTLSOnly() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("tls")
    try h.writePool(pool, replicas: 1)
    func status(url: String = Self.url, entry: String?) throws -> CLIHarness.Run {
      if let entry { try Self.useDatabase(h, url: url, entry: entry) } else {
        try Self.useDatabase(h, url: url)
        try FileManager.default.removeItem(at: h.dir.appendingPathComponent("machine-config.yaml"))
      }
      return try h.run(["rollout", "status", pool], environment: Self.env)
    }
    let verified = try status(entry: "{ca: \(Self.testCA)}")
    #expect(verified.status == 0 && !verified.stderr.contains("state.insecure"), "\(verified.stdout)\(verified.stderr)")
    let wrongCA = try status(entry: "{ca: \(Self.otherCA)}")
    #expect(wrongCA.status != 0 && wrongCA.stderr.contains("cannot connect to the state database"), "\(wrongCA.stderr)")
    let wrongName = try status(url: "postgres://drover@localhost:54329/drover", entry: "{ca: \(Self.testCA)}")
    #expect(wrongName.status != 0 && wrongName.stderr.contains("certificate does not name localhost"), "\(wrongName.stderr)")
    let noEntry = try status(entry: nil)
    #expect(noEntry.status != 0 && noEntry.stderr.contains("has no CA in this machine's configuration"), "\(noEntry.stderr)")
    let disabled = try status(url: Self.url + "?sslmode=disable", entry: "{ca: \(Self.testCA)}")
    #expect(disabled.status != 0 && disabled.stderr.contains("does not mark it insecure"), "\(disabled.stderr)")
    let insecure = try status(entry: "{insecure: true}")
    #expect(insecure.status == 0 && insecure.stderr.contains("reached without TLS"), "\(insecure.stdout)\(insecure.stderr)")
    // None of the refused attempts reached a query: the project has no row in the database.
    let rows = try Self.sql("SELECT count(*) FROM drover_journal WHERE project = '\(h.project)'")
    #expect(rows.status == 0 && rows.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(rows.output)")
  }

  /// #40: over plaintext (a machine that marks the server insecure), a server asking for the
  /// password in clear text or as MD5 never receives it: the session is cut before postgres-nio
  /// — which would answer either itself — sees the request. A fake server on loopback plays the
  /// part, records every byte it receives, and the password is not among them.
  @Test(arguments: [(3, "in clear text"), (5, "as MD5")])
  func aPlaintextServerAskingForThePasswordNeverReceivesIt(code: Int32, said: String) throws {
    let server = try FakePasswordServer(authenticationCode: code)
    let h = try CLIHarness()
    try Self.useDatabase(h, url: "postgres://drover@127.0.0.1:\(server.port)/drover", entry: "{insecure: true}")
    let pool = CLIHarness.unique("fk")
    try h.writePool(pool, replicas: 1)
    let secret = "s3cret-\(UUID().uuidString)"
    let run = try h.run(["rollout", "status", pool], environment: ["DROVER_STATE_PASSWORD": secret])
    let (startup, after) = server.received()
    #expect(!startup.isEmpty, "the client did connect and send its startup message")
    #expect(!String(decoding: startup + after, as: UTF8.self).contains(secret) && after.first != UInt8(ascii: "p"), "no password message ('p') was sent: \(after)")
    #expect(run.status != 0 && run.stderr.contains("asked for the password \(said)") && run.stderr.contains("the password was not sent"), "\(run.stderr)")
  }

  @Test func aWrongPasswordIsAClearErrorNotAHang() throws {
    let h = try CLIHarness()
    try Self.useDatabase(h, url: Self.url)
    try h.writePool(CLIHarness.unique("pw"), replicas: 1)
    let run = try h.run(["apply", "--auto-approve"], environment: ["DROVER_STATE_PASSWORD": "wrong"])
    #expect(run.status != 0 && run.stderr.contains("cannot connect to the state database"), "\(run.stderr)")
  }
}

/// The test PostgreSQL of `scripts/postgres-test`: its suite is skipped, with the reason, where no
/// server answers (the full run in `scripts/test` fails on any skip).
enum TestPostgres {
  static let answers = accepts(port: 54329)

  /// Whether something accepts TCP connections on 127.0.0.1:`port`.
  static func accepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
  }
}
