import DroverEngine
import DroverModel
import Foundation
import Synchronization
import Testing

/// `retries` and a node that stops during its health wait, with real commands and files.
@Suite struct HealthRetriesTests {
  let dir: String

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-retries-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  }

  /// A command that hangs on its first run (killed at the attempt's timeout) and passes after.
  func hangsOnce() throws -> [String] {
    let script = dir + "/check.sh"
    try """
      #!/bin/sh
      n=$(cat "\(dir)/count" 2>/dev/null || echo 0)
      echo $((n + 1)) > "\(dir)/count"
      [ "$n" -ge 1 ] || exec sleep 30
      """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    return [script]
  }

  func check(_ argv: [String], retries: Int, isRunning: (@Sendable () -> Bool?)? = nil) -> String? {
    var node = NodeEndpoint(name: "web-1", host: "test:///default", pool: "web", image: "demo@v1", consoleLog: dir + "/console.log")
    node.isRunning = isRunning
    let spec = HealthCheckSpec(kind: .command(argv: argv), timeout: TimeSpan(milliseconds: 500), interval: TimeSpan(milliseconds: 50), retries: retries)
    return HealthChecker().unhealthyReason(node, checks: [spec], deadline: Date().addingTimeInterval(60), shouldStop: { false })
  }

  @Test func withoutRetriesAHungAttemptFailsTheCheck() throws {
    let reason = check(try hangsOnce(), retries: 0)
    #expect(reason?.contains("failed 1 attempt") == true, "\(reason ?? "healthy")")
  }

  @Test func aRetryGetsAFreshAttempt() throws {
    #expect(check(try hangsOnce(), retries: 1) == nil)
    #expect(try String(contentsOfFile: dir + "/count", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "2")
  }

  @Test func aNodeThatStopsFailsAtOnceWithItsLastConsoleLines() throws {
    try "booting\nKernel panic - not syncing: VFS\n".write(toFile: dir + "/console.log", atomically: true, encoding: .utf8)
    let calls = Mutex(0)
    let reason = check(["/bin/false"], retries: 3) {
      calls.withLock {
        $0 += 1
        return $0 == 1
      }
    }
    #expect(reason?.contains("stopped during its health check") == true, "\(reason ?? "healthy")")
    #expect(reason?.contains("Kernel panic - not syncing: VFS") == true)
    #expect(reason?.contains("console log: \(dir)/console.log") == true)
    #expect(calls.withLock { $0 } == 2, "one probe, then the stop is seen: no waiting out the timeout or the retries")
  }
}
