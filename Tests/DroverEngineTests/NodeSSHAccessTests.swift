import DroverBasics
import DroverEngine
import DroverModel
import DroverRollout
import Foundation
import Testing

/// #18: Drover reaches nodes over SSH with the project's derived key and host keys pinned from
/// each node's console — against a real sshd on loopback (root's, on a port of its own, standing
/// in for a node: a node's sshd is the same program). A key that is not the pinned one is never
/// connected to, and the check fails at once instead of waiting out its timeout.
@Suite(.serialized) final class NodeSSHAccessTests {
  let dir: String
  let port: Int
  let sshd: Process
  let hostKey: String
  let access: NodeSSHAccess
  let identity = SSHIdentity(deriving: RecordKey(bytes: Array(repeating: 7, count: 32), project: "shop"))

  static func run(_ argv: [String], environment: [String: String] = [:]) -> (status: Int32, output: String) {
    switch ChildProcess.run(argv, environment: environment, timeout: 30) {
    case .success(let done): return (done.status, done.output)
    case .failure: return (127, "cannot run \(argv[0])")
    }
  }

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-ssh-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
    _ = Self.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir + "/host_ed25519"])
    _ = Self.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir + "/other_ed25519"])
    hostKey = try String(contentsOfFile: dir + "/host_ed25519.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    try (identity.publicKeyLine + "\n").write(toFile: dir + "/authorized_keys", atomically: true, encoding: .utf8)
    port = 24000 + Int.random(in: 0..<4000)
    try """
      Port \(port)
      ListenAddress 127.0.0.1
      HostKey \(dir)/host_ed25519
      PidFile \(dir)/sshd.pid
      AuthorizedKeysFile \(dir)/authorized_keys
      PermitRootLogin prohibit-password
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      StrictModes no
      UsePAM no

      """.write(toFile: dir + "/sshd_config", atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    sshd = Process()
    sshd.executableURL = URL(fileURLWithPath: "/usr/sbin/sshd")
    sshd.arguments = ["-D", "-e", "-f", dir + "/sshd_config"]
    sshd.standardOutput = FileHandle.nullDevice
    sshd.standardError = FileHandle.nullDevice
    try sshd.run()
    access = try NodeSSHAccess.prepare(stateDirectory: dir + "/state", project: "shop", identity: identity, user: "root", port: port)
    for _ in 0..<100 {
      let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      var addr = sockaddr_in()
      addr.sin_family = sa_family_t(AF_INET)
      addr.sin_port = in_port_t(UInt16(port).bigEndian)
      inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
      let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
      close(s)
      if rc == 0 { break }
      Thread.sleep(forTimeInterval: 0.05)
    }
  }

  deinit {
    // SIGKILL, and waited for: a child started from a test worker thread may inherit a mask that
    // blocks SIGTERM, and `.ci/run` fails on any process a test leaves behind.
    kill(sshd.processIdentifier, SIGKILL)
    sshd.waitUntilExit()
    try? FileManager.default.removeItem(atPath: dir)
  }

  func console(_ name: String, keys: [String]) throws -> String {
    let path = "\(dir)/\(name).log"
    let block = keys.isEmpty ? "Booting\n" : "-----BEGIN SSH HOST KEY KEYS-----\n" + keys.map { $0 + " root@\(name)\n" }.joined() + "-----END SSH HOST KEY KEYS-----\n"
    try block.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func node(_ name: String, console: String) -> NodeEndpoint {
    var n = NodeEndpoint(name: name, host: "qemu:///system", pool: "web", image: "debian@v1", address: "127.0.0.1", consoleLog: console)
    n.ssh = access
    n.hostKeyAlias = NodeSSHAccess.alias(node: name, uuid: Self.uuid(name))
    return n
  }

  func check(_ node: NodeEndpoint, output: String? = nil, timeout: TimeSpan = .seconds(20)) -> String? {
    HealthChecker().unhealthyReason(
      node, checks: [HealthCheckSpec(kind: .ssh(command: "echo hello from $(id -un)", outputPattern: output), timeout: timeout, interval: TimeSpan(milliseconds: 200), retries: 0)],
      deadline: Date().addingTimeInterval(30), shouldStop: { false })
  }

  /// A stand-in domain UUID per node name.
  static func uuid(_ name: String) -> String { "6f1c0a52-3c1e-4a0e-9d6a-0000000000\(name.suffix(1))0" }
  static func alias(_ name: String) -> String { NodeSSHAccess.alias(node: name, uuid: uuid(name)) }

  var pins: String { (try? String(contentsOfFile: access.knownHostsFile, encoding: .utf8)) ?? "" }

  @Test func theDerivedKeyIsAnOpenSSHKeyWrittenPrivately() throws {
    let derived = Self.run(["/usr/bin/ssh-keygen", "-y", "-f", access.identityFile])
    #expect(derived.status == 0 && derived.output.hasPrefix(identity.publicKeyLine.split(separator: " ").prefix(2).joined(separator: " ")), "\(derived.output)")
    let st = try FileManager.default.attributesOfItem(atPath: access.identityFile)
    #expect((st[.posixPermissions] as? Int) == 0o600)
    #expect(SSHIdentity(deriving: RecordKey(bytes: Array(repeating: 7, count: 32), project: "shop")) == identity, "the same on every machine")
    #expect(SSHIdentity(deriving: RecordKey(bytes: Array(repeating: 7, count: 32), project: "other")).publicKeyLine != identity.publicKeyLine)
    #expect(!(try String(contentsOfFile: access.wrapper, encoding: .utf8)).contains("StrictHostKeyChecking=no"))
  }

  @Test func aCheckPinsTheConsolesKeysThenConnects() throws {
    let web1 = node("web-1", console: try console("web-1", keys: [hostKey]))
    #expect(check(web1, output: "^hello from root$") == nil)
    #expect(pins.contains("\(Self.alias("web-1")) \(hostKey)\n"))
    // A hook runs a command on its node through DROVER_NODE_SSH.
    let env = web1.hookEnvironment()
    let hook = Self.run(["/bin/sh", "-c", "\"$DROVER_NODE_SSH\" echo from the hook"], environment: env)
    #expect(hook.status == 0 && hook.output.contains("from the hook"), "\(hook.output) \(env)")
    // Output that does not match is not healthy. (The check keeps probing until its timeout:
    // 15 s lets one ssh run finish even on a loaded machine, where 800 ms did not.)
    let mismatch = check(web1, output: "^nope$", timeout: .seconds(15))
    #expect(mismatch?.contains("output does not match /^nope$/") == true, "\(mismatch ?? "healthy")")
  }

  /// #51: a check whose command fails says what the node said (its exit status and message) and
  /// how the probes failed — not only the last probe, which the deadline may have cut off.
  @Test func aFailedCheckShowsWhatTheNodePrinted() throws {
    let web4 = node("web-4", console: try console("web-4", keys: [hostKey]))
    let command = "echo 'Failed to connect to bus: No such file or directory' >&2; exit 1"
    let reason = HealthChecker().unhealthyReason(
      web4, checks: [HealthCheckSpec(kind: .ssh(command: command, outputPattern: "^active$"), timeout: .seconds(4), interval: TimeSpan(milliseconds: 200), retries: 0)],
      deadline: Date().addingTimeInterval(30), shouldStop: { false })
    let text = try #require(reason, "a failing command is never healthy")
    #expect(text.contains("): exit 1: Failed to connect to bus: No such file or directory"), "\(text)")
    #expect(text.range(of: #"\(timeout 4s each, \d+ probes?: \d+ failed(, 1 timed out)?\)"#, options: .regularExpression) != nil, "\(text)")
    // A probe the deadline cut off is named beside the informative one, never instead of it.
    if text.contains("timed out)") { #expect(text.contains("(the last probe was cut off by the deadline: exit"), "\(text)") }
  }

  /// #37: a beat that could not be taken here — no pinned host key on this machine — is
  /// `unavailable`, judged `unknown`, never a missed beat; a node that answers is a beat, and one
  /// that refuses the connection is silent.
  @Test func aBeatThatCouldNotBeTakenIsUnknownNotSilence() throws {
    let spec = HeartbeatSpec(source: .ssh(command: "true"), interval: .seconds(5), missed: 2)
    let unpinned = node("web-5", console: try console("web-5", keys: []))
    let signal = HeartbeatReader.signal(spec, endpoint: unpinned, backend: nil)
    guard case .unavailable(let why) = signal else {
      Issue.record("not unavailable: \(signal)")
      return
    }
    #expect(why.contains("host keys are not on its console"), "\(why)")
    var memory = NodeMemory(uuid: "u5", lastBeat: 0)
    memory.source = "ssh"
    let (condition, kept) = assessNode(NodeSignals(state: "running", heartbeat: signal), uuid: "u5", heartbeat: spec, memory: memory, now: 3600)
    #expect(condition == .unknown(reason: "its heartbeat could not be taken from here: \(why)"), "an hour without a beat we could take is no death")
    #expect(kept.lastBeat == 0 && kept.unhealthySince == nil)
    let pinned = node("web-6", console: try console("web-6", keys: [hostKey]))
    #expect(HeartbeatReader.signal(spec, endpoint: pinned, backend: nil) == .answered)
    // The same node, its sshd gone (its port refuses): silent, the node's own doing.
    var closed = pinned
    closed.ssh = try NodeSSHAccess.prepare(stateDirectory: dir + "/state", project: "shop", identity: identity, user: "root", port: 1)
    guard case .silent = HeartbeatReader.signal(spec, endpoint: closed, backend: nil) else {
      Issue.record("a refused connection is silence")
      return
    }
  }

  @Test func aHostWhoseKeyIsNotThePinnedOneIsNeverConnectedTo() throws {
    let other = try String(contentsOfFile: dir + "/other_ed25519.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    // The console shows a key the sshd at that address does not hold: refused at once.
    let started = Date()
    let reason = check(node("web-2", console: try console("web-2", keys: [other])), timeout: .seconds(20))
    #expect(reason?.contains("did not show the host key pinned for \(Self.alias("web-2"))") == true, "\(reason ?? "healthy")")
    #expect(Date().timeIntervalSince(started) < 15, "a contradiction is final: not waited on until the timeout")
    // Pinned keys are never re-learned from a console that now shows others.
    let web3 = node("web-3", console: try console("web-3", keys: [hostKey]))
    #expect(check(web3) == nil)
    _ = try console("web-3", keys: [other])
    #expect(check(web3)?.contains("differ from the ones pinned for it") == true)
    // Forgotten (the node was deleted or is made again): the next console is learned.
    try access.forget(aliases: [Self.alias("web-3")])
    #expect(!pins.contains(Self.alias("web-3")))
  }

  /// Each node makes its own keys: a console showing keys another node already showed (an
  /// image's baked keys, or keys given to every node) is refused, so one cannot pass for the other.
  @Test func keysAnotherNodeShowedAreRefused() throws {
    #expect(check(node("web-1", console: try console("web-1", keys: [hostKey]))) == nil)
    let reason = check(node("web-6", console: try console("web-6", keys: [hostKey])))
    #expect(reason?.contains("already pinned for \(Self.alias("web-1")): nodes must not share host keys") == true, "\(reason ?? "healthy")")
    #expect(!pins.contains(Self.alias("web-6")))
  }

  @Test func noKeysOnTheConsoleYetIsWaitedForNeverGuessed() throws {
    let reason = check(node("web-4", console: try console("web-4", keys: [])), timeout: TimeSpan(milliseconds: 600))
    #expect(reason?.contains("host keys are not on its console yet") == true, "\(reason ?? "healthy")")
    #expect(!pins.contains("web-4"))
  }

  @Test func anEditedPinsFileIsAnErrorNotATrustedKey() throws {
    try "\(Self.alias("web-5")) ssh-ed25519 this-is-not-a-key\n".write(toFile: access.knownHostsFile, atomically: true, encoding: .utf8)
    let reason = check(node("web-5", console: try console("web-5", keys: [hostKey])), timeout: TimeSpan(milliseconds: 800))
    #expect(reason?.contains("line 1 is not '<alias> <key type> <base64>'") == true, "\(reason ?? "healthy")")
    try FileManager.default.removeItem(atPath: access.knownHostsFile)
  }

  /// A domain record kept in memory, as `HostKeyRecord` sees a host's: what `seal` wrote is what
  /// `read` returns; `verdict` stands for a record this machine cannot check or does not trust.
  final class RecordStandIn: @unchecked Sendable {
    let lock = NSLock()
    var sealed: [String]?
    var verdict: RecordedHostKeys?
    var seals = 0
    var record: HostKeyRecord {
      HostKeyRecord(
        read: { [self] in
          lock.withLock { verdict ?? sealed.map(RecordedHostKeys.keys) ?? RecordedHostKeys.none }
        },
        seal: { [self] keys in
          lock.withLock {
            seals += 1
            sealed = keys
            return nil
          }
        })
    }
  }

  /// #37: the keys a node showed when it was first pinned are sealed into its domain record; a
  /// second machine (another state folder) with the project key verifies the node from the record
  /// alone — its console restarted and silent — so its beats count and its checks pass.
  @Test func aSecondStateFolderVerifiesTheNodeFromItsSealedKeys() throws {
    let record = RecordStandIn()
    var first = node("web-7", console: try console("web-7", keys: [hostKey]))
    first.hostKeyRecord = record.record
    #expect(check(first) == nil)
    #expect(record.sealed == [hostKey] && record.seals == 1, "sealed when first pinned")
    #expect(check(first) == nil && record.seals == 1, "the cache answers after that: no second seal")

    // Another machine: its own state folder, the same project key, the node restarted (its
    // console no longer shows the keys).
    let elsewhere = try NodeSSHAccess.prepare(stateDirectory: dir + "/state-b", project: "shop", identity: identity, user: "root", port: port)
    var second = node("web-7", console: try console("web-7", keys: []))
    second.ssh = elsewhere
    let spec = HeartbeatSpec(source: .ssh(command: "true"), interval: .seconds(5), missed: 2)
    guard case .unavailable = HeartbeatReader.signal(spec, endpoint: second, backend: nil) else {
      Issue.record("without the record the node is not pinned here: unknown, never silent")
      return
    }
    second.hostKeyRecord = record.record
    #expect(HeartbeatReader.signal(spec, endpoint: second, backend: nil) == .answered, "the record's keys verify the node")
    let pinsB = try String(contentsOfFile: elsewhere.knownHostsFile, encoding: .utf8)
    #expect(pinsB.contains("\(Self.alias("web-7")) \(hostKey)\n"), "the local pins are a cache of the record: \(pinsB)")
    #expect(record.seals == 1, "keys read from the record are not sealed again")
  }

  /// #37: keys that contradict the record are refused at once — a console showing others, or an
  /// address whose sshd presents another key — and a record that is not trusted is never used; one
  /// this machine cannot check leaves the beat unknown.
  @Test func keysThatContradictTheRecordAreRefusedAtOnce() throws {
    let other = try String(contentsOfFile: dir + "/other_ed25519.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    let record = RecordStandIn()
    record.sealed = [other]
    var shown = node("web-8", console: try console("web-8", keys: [hostKey]))
    shown.hostKeyRecord = record.record
    let started = Date()
    #expect(check(shown)?.contains("differ from the ones sealed in its domain record") == true)
    // The console says nothing now; the record's key is not what the sshd presents.
    var silent = node("web-8", console: try console("web-8", keys: []))
    silent.hostKeyRecord = record.record
    let reason = check(silent)
    #expect(reason?.contains("did not show the host key pinned for \(Self.alias("web-8"))") == true, "\(reason ?? "healthy")")
    #expect(Date().timeIntervalSince(started) < 15, "a contradiction is final: not waited on until the timeout")
    #expect(record.seals == 0)

    record.verdict = .forged("the host keys sealed in its record do not verify under the project key: edited or forged")
    var forged = node("web-9", console: try console("web-9", keys: [hostKey]))
    forged.hostKeyRecord = record.record
    #expect(check(forged)?.contains("are not trusted: the host keys sealed in its record do not verify") == true)
    #expect(!pins.contains(Self.alias("web-9")) && record.seals == 0, "never pinned, never sealed over")
    // As a heartbeat: a record not trusted is no missed beat — the node is unknown, never repaired for it.
    guard case .unavailable(let refused) = HeartbeatReader.signal(HeartbeatSpec(source: .ssh(command: "true"), interval: .seconds(5), missed: 2), endpoint: forged, backend: nil)
    else {
      Issue.record("a refused record is unknown, not silence")
      return
    }
    #expect(refused.contains("could not be verified"), "\(refused)")

    record.verdict = .cannotCheck("this machine has no project key to check the host keys sealed in its record")
    let spec = HeartbeatSpec(source: .ssh(command: "true"), interval: .seconds(5), missed: 2)
    guard case .unavailable(let why) = HeartbeatReader.signal(spec, endpoint: forged, backend: nil) else {
      Issue.record("a record this machine cannot check says nothing about the node")
      return
    }
    #expect(why.contains("no project key to check"), "\(why)")
  }

  /// #37 review: this machine's cache is checked against the record once per process — a node
  /// pinned before keys were sealed gets them sealed, and a cache the record contradicts (the node
  /// re-adopted on another machine) is replaced by the record's keys.
  @Test func theCacheIsCheckedAgainstTheRecordOncePerProcess() throws {
    let other = try String(contentsOfFile: dir + "/other_ed25519.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    // Pinned by an older Drover: in the cache, not in the record.
    try "\(Self.alias("web-3")) \(hostKey)\n".write(toFile: access.knownHostsFile, atomically: true, encoding: .utf8)
    let record = RecordStandIn()
    var old = node("web-3", console: try console("web-3", keys: []))
    old.hostKeyRecord = record.record
    #expect(check(old) == nil)
    #expect(record.sealed == [hostKey] && record.seals == 1, "the cached keys were sealed into the record")
    // The record now holds other keys (the node was adopted and pinned again elsewhere): the
    // cache follows the record, and the sshd showing the old key is refused.
    let web4 = node("web-4", console: try console("web-4", keys: []))
    try "\(Self.alias("web-4")) \(hostKey)\n".write(toFile: access.knownHostsFile, atomically: true, encoding: .utf8)
    let moved = RecordStandIn()
    moved.sealed = [other]
    var readopted = web4
    readopted.hostKeyRecord = moved.record
    #expect(check(readopted)?.contains("did not show the host key pinned") == true)
    #expect(pins.contains("\(Self.alias("web-4")) \(other)"), "\(pins)")
  }

  /// #37: the pins file's error no longer tells the user to delete it.
  @Test func anUnreadablePinsFileIsExplainedNotToBeDeleted() throws {
    try "garbage\n".write(toFile: access.knownHostsFile, atomically: true, encoding: .utf8)
    let problem = try #require(Result { () throws(Diagnostic) in try access.forget(aliases: ["web-1.x"]) }.failure)
    #expect(problem.hint?.contains("remove") == false && problem.hint?.contains("sealed in each node's domain record") == true, "\(problem.hint ?? "")")
    try FileManager.default.removeItem(atPath: access.knownHostsFile)
  }
}

extension Result {
  var failure: Failure? {
    if case .failure(let e) = self { return e }
    return nil
  }
}

