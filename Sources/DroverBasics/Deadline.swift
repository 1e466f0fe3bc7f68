import Foundation
import Synchronization

/// Runs a blocking call with a deadline: on a thread of its own, waited for at most `seconds`.
///
/// Why a thread: a libvirt call to a daemon that froze mid-call blocks in the kernel and cannot be
/// cancelled. Past the deadline the caller gets nil and goes on; the call's thread is abandoned.
///
/// Why a bound: a process that lives on (`drover watch`) would leave one such thread behind each
/// pass. An abandoned call is counted until its thread ends; while one under the same `key` (a
/// host) is still out, a new call under that key is refused at once (`StillStuck`) instead of
/// starting another thread that would block behind it, and past `outstandingLimit` abandoned
/// calls in all, every new call is refused. The counts are shown as metrics.
public enum Deadline {
  /// A call refused because earlier calls are still stuck past their deadlines.
  public struct StillStuck: Error, CustomStringConvertible {
    public let description: String
  }

  /// Abandoned calls still running, over the whole process, beyond which none is started.
  public static let outstandingLimit = 32

  struct Ledger {
    var outstanding = 0
    var abandonedTotal = 0
    var byKey: [String: Int] = [:]
  }
  static let ledger = Mutex(Ledger())

  /// Calls abandoned at their deadlines whose threads still run.
  public static var outstanding: Int { ledger.withLock { $0.outstanding } }
  /// Calls abandoned at their deadlines since this process started.
  public static var abandonedTotal: Int { ledger.withLock { $0.abandonedTotal } }

  /// Why a new call under `key` must not start now, or nil.
  public static func refusal(key: String?) -> String? {
    ledger.withLock { l -> String? in
      if let key, let out = l.byKey[key], out > 0 { return "a call abandoned at its deadline is still unanswered" }
      if l.outstanding >= outstandingLimit { return "\(l.outstanding) calls abandoned at their deadlines are still unanswered" }
      return nil
    }
  }

  public static func run<T: Sendable>(seconds: Double, key: String? = nil, _ body: @escaping @Sendable () throws -> T) throws -> T? {
    if let refusal = refusal(key: key) { throw StillStuck(description: refusal) }
    let box = Mutex(Slot<T>())
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
      let result = Result { try body() }
      box.withLock { slot in
        slot.result = result
        // Lock order everywhere: the slot, then the ledger.
        if slot.abandoned { ledger.withLock { $0.release(key) } }
      }
      done.signal()
    }
    thread.stackSize = 1 << 20
    thread.start()
    if done.wait(timeout: .now() + seconds) == .success, let result = box.withLock({ $0.result }) { return try result.get() }
    let late = box.withLock { slot -> Result<T, Error>? in
      if let result = slot.result { return result }
      slot.abandoned = true
      ledger.withLock { $0.hold(key) }
      return nil
    }
    return try late?.get()
  }
}

extension Deadline {
  /// One call's result, and whether its caller stopped waiting for it.
  struct Slot<T> {
    var result: Result<T, Error>?
    var abandoned = false
  }
}

extension Deadline.Ledger {
  mutating func hold(_ key: String?) {
    outstanding += 1
    abandonedTotal += 1
    if let key { byKey[key, default: 0] += 1 }
  }

  mutating func release(_ key: String?) {
    outstanding -= 1
    if let key {
      byKey[key, default: 1] -= 1
      if byKey[key] == 0 { byKey[key] = nil }
    }
  }
}
