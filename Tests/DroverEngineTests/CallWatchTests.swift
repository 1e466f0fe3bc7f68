import DroverBasics
import Foundation
import Synchronization
import Testing

/// #39: deadlines for calls made inline on a worker's thread, enforced by the worker's waiter.
@Suite(.serialized) struct CallWatchTests {
  @Test func aCallThatReturnsInTimeIsNeverAbandoned() throws {
    let watch = CallWatch()
    let value = try watch.run(seconds: 5, key: "host-a", what: "reading") { 42 }
    #expect(value == 42)
    #expect(watch.abandonIfOverdue(now: .max) == nil, "no call in flight")
    #expect(watch.exit(), "its waiter still waits for it")
    #expect(watch.abandonIfOverdue(now: .max) == nil && !watch.isAbandoned, "an ended worker is never abandoned")
  }

  /// A call past its deadline: the waiter abandons the worker; the call is held in the ledger
  /// (new calls to its host are refused at once) until it returns, which then throws, its
  /// result dropped; then the host takes calls again.
  @Test func anOverdueCallIsAbandonedHeldAndReleased() throws {
    let key = "host-\(UUID().uuidString.prefix(8))"
    let watch = CallWatch()
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<Int, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Thread {
      let r = Result { try watch.run(seconds: 0.05, key: key, what: "defining a node") { () -> Int in
        entered.signal()
        release.wait()
        return 7
      } }
      outcome.withLock { $0 = r }
      done.signal()
    }.start()
    entered.wait()
    #expect(watch.abandonIfOverdue(now: 0) == nil, "not yet due")
    let late = watch.abandonIfOverdue(now: .max)
    #expect(late?.what == "defining a node")
    #expect(watch.isAbandoned && watch.abandonIfOverdue(now: .max) == nil, "abandoned once")
    let before = Deadline.outstanding
    #expect(before >= 1)
    #expect(throws: Deadline.StillStuck.self, "a new call to the same host is refused while the old one is out") {
      try CallWatch().run(seconds: 5, key: key, what: "another call") { 1 }
    }
    release.signal()
    done.wait()
    let result = outcome.withLock { $0 }
    #expect(throws: CallWatch.Abandoned.self) { try result?.get() }
    #expect(Deadline.outstanding == before - 1, "released when it returned")
    #expect(try CallWatch().run(seconds: 5, key: key, what: "a later call") { 1 } == 1)
    #expect(!watch.exit(), "the waiter no longer waits for an abandoned worker")
  }
}
