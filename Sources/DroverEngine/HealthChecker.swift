import DroverBasics
import DroverModel
import Foundation

/// Where a node can be reached, for health checks and drain hooks.
public struct NodeEndpoint: Sendable {
  public var name: String
  public var host: String
  public var pool: String
  public var image: String
  public var address: String?
  public var consoleLog: String?
  /// Looks the address up when a check needs it (a new node gets its DHCP lease a few seconds in).
  public var resolveAddress: (@Sendable () -> String?)?
  /// Whether the node's domain is running now (nil: cannot tell). A node that powers off or
  /// crashes during its health wait fails at once instead of being waited on until the timeout.
  public var isRunning: (@Sendable () -> Bool?)?
  /// Reads the console through the host (a host with its own image pool); nil: `consoleLog` is
  /// a local file.
  public var readConsole: (@Sendable () -> [UInt8]?)?
  /// How Drover reaches the node over SSH (nil: the project has no key yet), and the alias its
  /// host keys are pinned under (`NodeSSHAccess.alias`: name and domain UUID).
  public var ssh: NodeSSHAccess?
  public var hostKeyAlias: String?
  /// The node's domain record, which keeps its host keys for every machine (nil: the host keeps
  /// none, so the pins are this machine's only).
  public var hostKeyRecord: HostKeyRecord?
  /// The rollout that takes the node out of service (a drain's reason names it).
  public var rollout: String? = nil
  /// The node's template variables (its record's), for a drain's `node_name`; nil: the domain's
  /// name stands for every one of them.
  public var variables: NodeVariables? = nil

  /// The scheduler's name for this node under `template` (nil: `{{hostname}}`): never a guess — a
  /// variable the node has no value for is an error naming it.
  public func schedulerName(_ template: String?) throws -> String {
    let v = variables ?? NodeVariables(node: name, domain: name, hostname: name, address: address, pool: pool)
    guard let template else { return v.hostname }
    guard let rendered = NodeTemplate.render(template, v) else {
      throw Diagnostic.error(
        "rollout.hook", "drain.node_name '\(template)' has no value for node \(name) (its address is not known yet?)", subject: "node \(name) on \(host)")
    }
    return rendered
  }

  /// The console so far, from the host or the local log: its first `ConsoleBound.head` bytes.
  func consoleBytes() -> [UInt8]? {
    if let readConsole { return readConsole() }
    guard let consoleLog, let handle = FileHandle(forReadingAtPath: consoleLog) else { return nil }
    defer { try? handle.close() }
    return [UInt8]((try? handle.read(upToCount: Int(ConsoleBound.head))) ?? Data())
  }

  public init(name: String, host: String, pool: String, image: String, address: String? = nil, consoleLog: String? = nil) {
    self.name = name
    self.host = host
    self.pool = pool
    self.image = image
    self.address = address
    self.consoleLog = consoleLog
  }

  /// The environment given to command checks and hooks. With SSH access, `DROVER_NODE_SSH` is
  /// the command that runs a command on this node (`"$DROVER_NODE_SSH" systemctl stop slurmd`).
  public var environment: [String: String] {
    var env = ["DROVER_NODE": name, "DROVER_HOST": host, "DROVER_POOL": pool, "DROVER_IMAGE": image]
    if let address { env["DROVER_NODE_IP"] = address }
    if let ssh, let hostKeyAlias {
      env["DROVER_NODE_SSH"] = ssh.wrapper
      env["DROVER_NODE_HOSTKEY_ALIAS"] = hostKeyAlias
    }
    return env
  }

  /// Makes sure the node's host keys are pinned, from the cache, its domain record or its
  /// console (`NodeSSHAccess.pin`); nil without SSH access. The keys are printed in the first
  /// minutes of a boot: the first 8 MiB of a console hold them.
  func pinHostKeys() -> NodeSSHAccess.Pinning? {
    guard let ssh, let hostKeyAlias else { return nil }
    return ssh.pin(alias: hostKeyAlias, console: consoleBytes().map { Array($0.prefix(8 << 20)) }, record: hostKeyRecord)
  }

  /// Pins the node's host keys if its console shows them now (best effort). Called once a new node
  /// is healthy: cloud-init prints the keys once per instance and a restart truncates the console,
  /// so a node no ssh check reached still gets its pins while they can be read.
  public func pinIfShown() { _ = pinHostKeys() }

  /// The environment for a hook about to run: the node's address looked up when not known yet,
  /// and its host keys pinned from its console when they are not pinned yet, so `DROVER_NODE_SSH`
  /// works for a node no ssh check ever reached.
  public func hookEnvironment() -> [String: String] {
    var node = self
    if node.address == nil { node.address = resolveAddress?() }
    pinIfShown()
    return node.environment
  }
}

/// Runs a node's health checks; every check must pass within its timeout.
public protocol HealthProbing: Sendable {
  /// nil when healthy, else why not (which check, what it saw).
  func unhealthyReason(_ node: NodeEndpoint, checks: [HealthCheckSpec], deadline: Date, shouldStop: @Sendable () -> Bool) -> String?
}

/// The real probes: console regex on the serial log, TCP connect, HTTP GET, and commands.
public struct HealthChecker: HealthProbing {
  public init() {}

  /// Each check passes at its first successful probe. An attempt probes every `interval` until it
  /// passes or its `timeout` runs out; a failed attempt is tried again up to `retries` more times;
  /// all of it within `deadline` (the pool's `upgrade.health_timeout`).
  public func unhealthyReason(_ node: NodeEndpoint, checks: [HealthCheckSpec], deadline: Date, shouldStop: @Sendable () -> Bool) -> String? {
    for check in checks {
      var tally = MissTally()
      var passed = false
      attempts: for attempt in 1...(1 + max(0, check.retries)) {
        let attemptDeadline = min(deadline, Date().addingTimeInterval(check.timeout.seconds))
        while true {
          if let stopped = stoppedReason(node) { return stopped }
          switch probe(check, node: node, deadline: attemptDeadline) {
          case .healthy:
            passed = true
            break attempts
          case .notYet(let miss): tally.add(miss)
          case .never(let why): return "\(describe(check)) failed: \(why)"
          }
          if shouldStop() { return "\(describe(check)) interrupted after \(tally.summary): \(tally.reason)" }
          if Date() >= attemptDeadline { break }
          Thread.sleep(forTimeInterval: min(check.interval.seconds, max(0.05, attemptDeadline.timeIntervalSinceNow)))
        }
        if Date() >= deadline && attempt <= check.retries {
          return "\(describe(check)) failed: the health timeout ran out during attempt \(attempt) of \(1 + check.retries) (\(tally.summary)): \(tally.reason)"
        }
      }
      if !passed {
        return "\(describe(check)) failed \(1 + check.retries) attempt\(check.retries == 0 ? "" : "s") (timeout \(check.timeout) each, \(tally.summary)): \(tally.reason)"
      }
    }
    return nil
  }

  /// Why the node cannot become healthy any more (it is not running), with the end of its console.
  func stoppedReason(_ node: NodeEndpoint) -> String? {
    guard node.isRunning?() == false else { return nil }
    var reason = "node \(node.name) stopped during its health check (it powered off or crashed)"
    if let log = node.consoleLog {
      if let data = node.consoleBytes() {
        let lines = String(decoding: data.suffix(4096), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).suffix(5)
        if !lines.isEmpty { reason += "; last console lines: " + lines.map { Terminal.printable(String($0)) }.joined(separator: " | ") }
      }
      reason += "; console log: \(log)"
    }
    return reason
  }

  public static func describe(_ check: HealthCheckSpec) -> String { HealthChecker().describe(check) }

  func describe(_ check: HealthCheckSpec) -> String {
    switch check.kind {
    case .console(let pattern): return "console check /\(pattern)/"
    case .tcp(let port): return "tcp check :\(port)"
    case .http(let port, let path, _, _): return "http check :\(port)\(path)"
    case .command(let argv): return "command check \(argv.joined(separator: " "))"
    case .ssh(let command, _): return "ssh check '\(Terminal.printable(String(command.prefix(80))))'"
    }
  }

  /// What one probe saw.
  enum Probe: Equatable {
    case healthy
    case notYet(ProbeMiss)
    /// No later probe can pass (a host key that contradicts the pinned one): fail now.
    case never(String)
  }

  func probe(_ check: HealthCheckSpec, node: NodeEndpoint, deadline: Date) -> Probe {
    if case .ssh(let command, let pattern) = check.kind { return probeSSH(command, pattern, node: node, deadline: deadline) }
    return probeLocal(check, node: node, deadline: deadline).map(Probe.notYet) ?? .healthy
  }

  /// Over SSH as Drover's user: the address from the node's lease, its host keys pinned from its
  /// console first (`NodeSSHAccess.pin`), then the command; never a connection to an unpinned key.
  func probeSSH(_ command: String, _ pattern: String?, node: NodeEndpoint, deadline: Date) -> Probe {
    guard let ssh = node.ssh, let alias = node.hostKeyAlias else {
      return .never("Drover has no SSH key for this project yet (it is derived from the project key)")
    }
    guard let address = node.address ?? node.resolveAddress?() else { return .notYet(ProbeMiss(.waiting, "the node has no IP address yet")) }
    switch node.pinHostKeys() ?? .pinned {
    case .pinned: break
    case .notYet(let why), .unavailable(let why): return .notYet(ProbeMiss(.waiting, why))
    case .refused(let why): return .never(why)
    }
    let remaining = max(1, deadline.timeIntervalSinceNow)
    let result = HookRunner.run(ssh.argv(address: address, alias: alias, command: command, connectTimeout: Int(min(10, remaining.rounded(.up)))), timeout: remaining)
    let output = String(result.output.suffix(64 << 10)).trimmingCharacters(in: .whitespacesAndNewlines)
    if result.status == 255 && output.contains("Host key verification failed") {
      return .never("the host at \(address) did not show the host key pinned for \(alias): not connected")
    }
    if result.timedOut { return .notYet(ProbeMiss(.cutOff, "exit \(result.status) (timed out)", output: output)) }
    // ssh itself exits 255 when it cannot connect or log in; the command's own status otherwise.
    if result.status == 255 { return .notYet(ProbeMiss(.unreachable, "ssh could not connect (exit 255)", output: output)) }
    guard result.status == 0 else { return .notYet(ProbeMiss(.failed, "exit \(result.status)", output: output)) }
    if let pattern, let regex = try? BoundedPattern(pattern), !regex.matches(output) {
      return .notYet(ProbeMiss(.wrongOutput, "output does not match /\(pattern)/", output: output))
    }
    return .healthy
  }

  /// One attempt of a check that runs here; nil when healthy.
  func probeLocal(_ check: HealthCheckSpec, node: NodeEndpoint, deadline: Date) -> ProbeMiss? {
    switch check.kind {
    case .console(let pattern):
      guard let data = node.consoleBytes() else { return ProbeMiss(.waiting, "no console log yet") }
      // libvirt truncates a file serial console at every start, so the log is this boot's.
      guard let regex = try? BoundedPattern(pattern) else { return ProbeMiss(.failed, "invalid pattern") }
      return ConsoleLines.anyMatches(data, regex) ? nil : ProbeMiss(.waiting, "pattern not seen on the console yet")
    case .tcp(let port):
      guard let address = node.address ?? node.resolveAddress?() else { return ProbeMiss(.waiting, "the node has no IP address yet") }
      return TCPProbe.connect(address, port: port, timeout: max(0.1, min(2, deadline.timeIntervalSinceNow))).map { ProbeMiss(.unreachable, $0) }
    case .http(let port, let path, let status, let body):
      guard let address = node.address ?? node.resolveAddress?() else { return ProbeMiss(.waiting, "the node has no IP address yet") }
      return TCPProbe.http(address, port: port, path: path, status: status, body: body, timeout: max(0.1, min(5, deadline.timeIntervalSinceNow)))
        .map { ProbeMiss($0.hasPrefix("connect ") ? .unreachable : .wrongOutput, $0) }
    case .command(let argv):
      let result = HookRunner.run(argv, environment: node.hookEnvironment(), timeout: max(0.1, deadline.timeIntervalSinceNow))
      if result.status == 0 { return nil }
      return result.timedOut
        ? ProbeMiss(.cutOff, "exit \(result.status) (timed out)", output: result.output) : ProbeMiss(.failed, "exit \(result.status)", output: result.output)
    case .ssh: return ProbeMiss(.failed, "an ssh check is probed over SSH (probeSSH), never here")
    }
  }
}

/// Minimal TCP and HTTP/1.0 probes with deadlines (no dependency on an HTTP stack).
enum TCPProbe {
  static func connect(_ address: String, port: Int, timeout: Double) -> String? {
    withSocket(address, port: port, timeout: timeout) { _ in nil }
  }

  static func http(_ address: String, port: Int, path: String, status: Int, body: String?, timeout: Double) -> String? {
    withSocket(address, port: port, timeout: timeout) { fd in
      let request = "GET \(path) HTTP/1.0\r\nHost: \(address)\r\nConnection: close\r\n\r\n"
      _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
      var response = [UInt8]()
      var buffer = [UInt8](repeating: 0, count: 4096)
      while response.count < 1 << 20 {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
      }
      let text = String(decoding: response, as: UTF8.self)
      let code = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
      if code != status { return "HTTP status \(code), expected \(status)" }
      if let body, let regex = try? BoundedPattern(body), !regex.matches(text) { return "body does not match /\(body)/" }
      return nil
    }
  }

  static func withSocket(_ address: String, port: Int, timeout: Double, _ body: (Int32) -> String?) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else { return "bad address \(address)" }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { return "connect \(address):\(port): \(String(cString: strerror(errno)))" }
    return body(fd)
  }
}

