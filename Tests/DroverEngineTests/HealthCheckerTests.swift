import DroverBasics
import DroverEngine
import DroverModel
import Foundation
import Testing

/// The health probes against real endpoints on this machine: an HTTP server on loopback, a console
/// log file, and commands.
@Suite(.serialized) final class HealthCheckerTests {
  let dir: String
  let server: Process
  let port: Int

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-health-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try "ok: ready\n".write(toFile: dir + "/healthz", atomically: true, encoding: .utf8)
    port = Self.freePort()
    server = Process()
    server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    server.arguments = ["python3", "-m", "http.server", "\(port)", "--bind", "127.0.0.1", "--directory", dir]
    server.standardOutput = FileHandle.nullDevice
    server.standardError = FileHandle.nullDevice
    try server.run()
    let probe = HealthCheckSpec(kind: .tcp(port: port), timeout: TimeSpan(milliseconds: 100), interval: TimeSpan(milliseconds: 50))
    for _ in 0..<100 where HealthChecker().unhealthyReason(node, checks: [probe], deadline: Date().addingTimeInterval(1), shouldStop: { false }) != nil {
      Thread.sleep(forTimeInterval: 0.1)
    }
  }

  /// A loopback port nothing listens on now (the kernel's pick for port 0): a random one could be
  /// taken by a server another run left behind, which then answers for this test.
  static func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: addr.sin_port))
  }

  deinit {
    // SIGKILL: a child started from a test worker thread may inherit a mask that blocks SIGTERM
    // (terminate() left these servers running after the suite).
    kill(server.processIdentifier, SIGKILL)
    server.waitUntilExit()
    try? FileManager.default.removeItem(atPath: dir)
  }

  var node: NodeEndpoint { NodeEndpoint(name: "web-1", host: "qemu:///system", pool: "web", image: "demo@v2", address: "127.0.0.1", consoleLog: dir + "/console.log") }

  func check(_ kind: HealthCheckSpec.Kind, timeout: TimeSpan = .seconds(2)) -> String? {
    HealthChecker().unhealthyReason(
      node, checks: [HealthCheckSpec(kind: kind, timeout: timeout, interval: TimeSpan(milliseconds: 100))],
      deadline: Date().addingTimeInterval(5), shouldStop: { false })
  }

  @Test func tcpAndHTTPChecks() {
    #expect(check(.tcp(port: port)) == nil)
    #expect(check(.http(port: port, path: "/healthz", expectStatus: 200, bodyPattern: "ok: re+ady")) == nil)
    #expect(check(.http(port: port, path: "/missing", expectStatus: 200, bodyPattern: nil))?.contains("HTTP status 404") == true)
    #expect(check(.http(port: port, path: "/healthz", expectStatus: 200, bodyPattern: "^nope$"))?.contains("body does not match") == true)
    let closed = check(.tcp(port: 1), timeout: TimeSpan(milliseconds: 500))
    #expect(closed?.contains("connect 127.0.0.1:1") == true)
    #expect(closed?.contains("tcp check :1 failed") == true)
  }

  /// #51: the failure names the most informative probe — the last one that ran to its end, with
  /// its exit status and first lines — and how the probes failed; one the deadline cut off is
  /// reported beside it, never instead of it.
  @Test func aFailedCheckReportsTheLastCompletedProbeAndTheTally() throws {
    let script = dir + "/flaky.sh"
    try """
      #!/bin/sh
      n=$(cat \(dir)/count 2>/dev/null || echo 0); echo $((n + 1)) > \(dir)/count
      if [ "$n" -lt 2 ]; then echo "Failed to connect to bus: No such file or directory"; echo "second line"; exit 1; fi
      exec sleep 30

      """.write(toFile: script, atomically: true, encoding: .utf8)
    let failed = HealthChecker().unhealthyReason(
      node, checks: [HealthCheckSpec(kind: .command(argv: ["/bin/sh", script]), timeout: .seconds(2), interval: TimeSpan(milliseconds: 100), retries: 0)],
      deadline: Date().addingTimeInterval(5), shouldStop: { false })
    let reason = try #require(failed)
    #expect(reason.contains("failed 1 attempt (timeout 2s each, 3 probes: 2 failed, 1 timed out)"), "\(reason)")
    #expect(reason.contains("): exit 1: Failed to connect to bus: No such file or directory | second line (the last probe was cut off by the deadline: exit"), "\(reason)")
  }

  @Test func consoleCheckWaitsForTheMarker() throws {
    try "booting\n".write(toFile: dir + "/console.log", atomically: true, encoding: .utf8)
    #expect(check(.console(pattern: "DROVER READY v[0-9]+"), timeout: TimeSpan(milliseconds: 300))?.contains("pattern not seen") == true)
    let log = dir + "/console.log"
    DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
      try? "booting\nDROVER READY v2\n".write(toFile: log, atomically: true, encoding: .utf8)
    }
    #expect(check(.console(pattern: "DROVER READY v[0-9]+"), timeout: .seconds(3)) == nil)
  }

  @Test func commandCheckSeesTheNodeInItsEnvironment() {
    #expect(check(.command(argv: ["/bin/sh", "-c", "[ \"$DROVER_NODE/$DROVER_IMAGE/$DROVER_NODE_IP\" = web-1/demo@v2/127.0.0.1 ]"])) == nil)
    #expect(check(.command(argv: ["/bin/sh", "-c", "echo not yet; exit 7"]), timeout: TimeSpan(milliseconds: 300))?.contains("exit 7: not yet") == true)
  }
}
