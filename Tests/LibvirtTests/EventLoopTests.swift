import Foundation
import Libvirt
import Synchronization
import Testing

/// Drover's own libvirt event loop (`EventLoop`), through libvirtd's test driver: keepalive runs
/// on it (its timers fire, the daemon's answers are read while no call is in flight), and many
/// calls from many threads, connections opened and closed, go through it. A frozen daemon being
/// noticed by keepalive is `FrozenHostTests.keepaliveEndsACallToAFrozenLocalDaemon`.
@Suite struct EventLoopTests {
  /// Idle for over twice the keepalive's limit: only a loop that sends the pings (timers) and
  /// reads their answers (handles) between calls keeps the connection open.
  @Test func anIdleConnectionWithKeepaliveStaysOpen() throws {
    let c = try Connection.open("test+unix:///default", keepAlive: Connection.KeepAlive(interval: 1, count: 1))
    _ = try c.allDomains()
    Thread.sleep(forTimeInterval: 4.5)
    #expect(throws: Never.self, "keepalive pings went unanswered") { _ = try c.allDomains() }
  }

  /// Calls from several threads on a few connections opened and closed as they go: every call
  /// answers (handles added, updated and removed while the loop runs; their free callbacks run).
  @Test func concurrentCallsOnConnectionsThatComeAndGo() throws {
    let failures = Atomic(0)
    DispatchQueue.concurrentPerform(iterations: 6) { _ in
      for _ in 0..<5 {
        do {
          let c = try Connection.open("test+unix:///default", keepAlive: Connection.KeepAlive(interval: 1, count: 3))
          for _ in 0..<20 { _ = try c.allDomains() }
        } catch {
          failures.add(1, ordering: .relaxed)
        }
      }
    }
    #expect(failures.load(ordering: .relaxed) == 0)
  }
}
