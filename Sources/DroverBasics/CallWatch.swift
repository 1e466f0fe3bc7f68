import Foundation
import Synchronization

/// Deadlines for one worker's calls made inline on the worker's own thread, watched by the thread
/// that waits for the worker — `Deadline` without a thread per call.
///
/// Why: `Deadline.run` starts a thread for every call so that its caller can walk away from a
/// call that never returns. An apply creating 1,000 nodes made 2,000 such threads and twice as
/// many hand-offs, client CPU the serial C floor does not spend. A worker of a wide apply is
/// itself a thread its waiter can walk away from: its calls run inline, and the waiter
/// (`abandonIfOverdue`) gives up on the worker — not just the call — when a call outlives its
/// deadline. The abandoned call is held in `Deadline`'s ledger under its key until it returns,
/// so no new call to that host starts meanwhile (`Deadline.StillStuck`), exactly as with
/// `Deadline.run`.
public final class CallWatch: Sendable {
  struct State {
    var what: String?
    var key: String?
    var seconds: Double = 0
    /// When the call in flight must have returned (uptime nanoseconds); nil between calls.
    var due: UInt64?
    /// Calls in flight, nested (a call's cleanup may make another call): only the outermost
    /// sets and clears the deadline.
    var depth = 0
    var abandoned = false
    /// The abandoned call is held in `Deadline`'s ledger (released once, when it returns).
    var held = false
    /// The worker is done (it can no longer be abandoned).
    var exited = false
  }
  let state = Mutex(State())

  public init() {}

  /// Runs `body` inline under a deadline of `seconds`, refused at once (`Deadline.StillStuck`)
  /// while a call under `key` is still out past its deadline. When this worker was abandoned
  /// during the call, the call's result is dropped and `Abandoned` thrown.
  public func run<T>(seconds: Double, key: String?, what: String, _ body: () throws -> T) throws -> T {
    if let refusal = Deadline.refusal(key: key) { throw Deadline.StillStuck(description: refusal) }
    let start = DispatchTime.now().uptimeNanoseconds
    let abandonedBefore = state.withLock { s -> Bool in
      if s.abandoned { return true }
      s.depth += 1
      if s.depth == 1 {
        s.what = what
        s.key = key
        s.seconds = seconds
        s.due = start + UInt64(max(0, seconds) * 1e9)
      }
      return false
    }
    if abandonedBefore { throw Abandoned(what: what, seconds: seconds) }
    let result = Result { try body() }
    let late = state.withLock { s -> Bool in
      s.depth -= 1
      if s.depth == 0 {
        s.due = nil
        if s.held {
          s.held = false
          Deadline.ledger.withLock { $0.release(s.key) }
        }
      }
      return s.abandoned
    }
    if late { throw Abandoned(what: what, seconds: seconds) }
    return try result.get()
  }

  /// Called by the waiter: when the call in flight is past its deadline, gives up on this
  /// worker (its call is held in the ledger until it returns) and says which call it was.
  public func abandonIfOverdue(now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> Abandoned? {
    state.withLock { s -> Abandoned? in
      guard !s.exited, !s.abandoned, let due = s.due, now >= due, let what = s.what else { return nil }
      s.abandoned = true
      s.held = true
      Deadline.ledger.withLock { $0.hold(s.key) }
      return Abandoned(what: what, seconds: s.seconds)
    }
  }

  /// Called by the waiter once the host stopped answering: gives up on this worker whatever it
  /// is doing — in a call (held in the ledger like an overdue one) or waiting on something a
  /// stuck worker holds (a lock) — so that no wait on it is unbounded. Nil when it had ended.
  public func abandon(reason: String, seconds: Double) -> Abandoned? {
    state.withLock { s -> Abandoned? in
      guard !s.exited, !s.abandoned else { return nil }
      s.abandoned = true
      if s.due != nil {
        s.held = true
        Deadline.ledger.withLock { $0.hold(s.key) }
      }
      return Abandoned(what: s.due != nil ? (s.what ?? reason) : reason, seconds: seconds)
    }
  }

  /// Whether the worker ended.
  public var hasExited: Bool { state.withLock { $0.exited } }

  /// Whether the waiter gave up on this worker.
  public var isAbandoned: Bool { state.withLock { $0.abandoned } }

  /// The worker ends; true when its waiter still waits for it (it was not abandoned).
  public func exit() -> Bool {
    state.withLock { s -> Bool in
      s.exited = true
      return !s.abandoned
    }
  }

  /// A call its worker's waiter stopped waiting for.
  public struct Abandoned: Error, CustomStringConvertible {
    public let what: String
    public let seconds: Double
    public var description: String { "no answer within \(Int(seconds)) s while \(what)" }
  }
}
