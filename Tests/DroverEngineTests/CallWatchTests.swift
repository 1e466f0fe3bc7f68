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
    #expect(Deadline.refusal(key: key) != nil, "held in the ledger")
    #expect(throws: Deadline.StillStuck.self, "a new call to the same host is refused while the old one is out") {
      try CallWatch().run(seconds: 5, key: key, what: "another call") { 1 }
    }
    release.signal()
    done.wait()
    let result = outcome.withLock { $0 }
    #expect(throws: CallWatch.Abandoned.self) { try result?.get() }
    #expect(Deadline.refusal(key: key) == nil, "released when it returned")
    #expect(try CallWatch().run(seconds: 5, key: key, what: "a later call") { 1 } == 1)
    #expect(!watch.exit(), "the waiter no longer waits for an abandoned worker")
  }

  /// A call whose cleanup makes another call (a failed define deleting its overlay): only the
  /// outermost call's deadline counts, and an abandoned nest is released exactly once — two
  /// workers given up on one host keep it refused until both calls are back.
  @Test func nestedCallsAreHeldAndReleasedOnce() throws {
    let key = "host-\(UUID().uuidString.prefix(8))"
    let (a, b) = (CallWatch(), CallWatch())
    let inner = DispatchSemaphore(value: 0), releaseA = DispatchSemaphore(value: 0), releaseB = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    Thread {
      _ = try? a.run(seconds: 0.05, key: key, what: "creating") { () -> Int in
        // The outer body failed; its cleanup is a second call, nested.
        _ = try? a.run(seconds: 0.05, key: key, what: "deleting the overlay") { () -> Int in
          inner.signal()
          releaseA.wait()
          return 0
        }
        throw CocoaError(.fileNoSuchFile)
      }
      done.signal()
    }.start()
    Thread {
      _ = try? b.run(seconds: 0.05, key: key, what: "creating") { () -> Int in
        inner.signal()
        releaseB.wait()
        return 0
      }
      done.signal()
    }.start()
    inner.wait()
    inner.wait()
    #expect(a.abandonIfOverdue(now: .max)?.what == "creating", "the outermost call names the step")
    #expect(b.abandonIfOverdue(now: .max) != nil)
    releaseA.signal()
    done.wait()
    #expect(Deadline.refusal(key: key) != nil, "one call is back, the other is still out: still refused")
    releaseB.signal()
    done.wait()
    #expect(Deadline.refusal(key: key) == nil, "both back: released, never below zero")
    #expect(try CallWatch().run(seconds: 5, key: key, what: "a later call") { 2 } == 2)
  }

  /// The waiter gives up on a worker that is in no call (waiting on a lock a stuck one holds):
  /// nothing is held for it, and its next call is refused.
  @Test func aWorkerOutsideACallCanBeGivenUpOn() {
    let key = "host-\(UUID().uuidString.prefix(8))"
    let watch = CallWatch()
    #expect(watch.abandonIfOverdue(now: .max) == nil, "not overdue: in no call")
    #expect(watch.abandon(reason: "waiting after the host stopped answering", seconds: 2)?.what == "waiting after the host stopped answering")
    #expect(Deadline.refusal(key: key) == nil, "nothing held")
    #expect(throws: CallWatch.Abandoned.self) { try watch.run(seconds: 5, key: key, what: "a call") { 1 } }
    #expect(!watch.exit())
  }
}
