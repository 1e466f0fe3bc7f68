import DroverBasics
import Foundation

/// Which of several `drover watch` processes of one project acts (#41): the one holding the
/// project's watch lock, on a session of its own that it keeps for as long as it leads. The others
/// stand by and ask for the lock every `standbyPoll`; a leader killed frees it at once (its session
/// ends), a frozen or cut-off one when its lease runs out — so one takes over within the lease plus
/// one poll. Never two at once: the lock excludes, and each pass's own pool locks fence every step
/// it takes, so a leader that lost the lead mid-pass stops before its next action.
///
/// Owns: taking, proving and giving up the lead. Must not: heal (the pass does), or decide
/// anything about nodes — the heal ledger and journal in the shared state carry an incident from
/// one leader to the next.
public final class WatchLeadership: @unchecked Sendable {
  /// The lock's name: not a pool name (those never start with `_`).
  public static let lockName = "_watch"
  /// How often a standby asks for the lead.
  public static let standbyPoll = 1.0

  public enum Status: Sendable, Equatable {
    /// This process leads; `took`: it has just become the leader.
    case leading(token: Int64?, took: Bool)
    /// Another process leads (nil: it could not be named).
    case standingBy(leader: LockHolder?)
  }

  let directory: String
  let command: String
  let state: StateStore
  private var lock: PoolLock?
  /// Why the last lead ended, said once.
  public private(set) var lostBecause: String?

  /// - Parameter state: a store of its own (the lead lives on its session, apart from each pass's).
  public init(stateDirectory: String, command: String, state: StateStore) {
    directory = stateDirectory + "/locks"
    self.command = command
    self.state = state
  }

  /// Proves the lead this process holds, or tries to take it. Throws when the state cannot be
  /// asked (a failed pass, for the service's count).
  public func ensure() throws -> Status {
    lostBecause = nil
    if let held = lock {
      do {
        try Fence([held]).check("leading the watch")
        return .leading(token: held.token, took: false)
      } catch {
        lostBecause = Diagnostic.line(of: error)
        lock = nil
        // Its session ended or cannot prove the lead: a new one for the next attempt.
        state.close()
      }
    }
    do {
      let taken = try PoolLock.acquire(pool: Self.lockName, directory: directory, command: command, timeout: 0, state: state)
      lock = taken
      return .leading(token: taken.token, took: true)
    } catch let refusal as Diagnostic where refusal.code == "apply.lock-held" {
      return .standingBy(leader: PoolLock.holder(pool: Self.lockName, directory: directory, state: state))
    } catch {
      state.close()
      throw error
    }
  }

  /// The lead as a fence, for the pass it leads (nil: not leading).
  public var fence: Fence? { lock.map { Fence([$0]) } }

  /// Gives the lead up (SIGTERM): a standby takes it at its next poll.
  public func resign() {
    lock = nil
  }

  /// Who leads the project's watch now, and the lease they renew (shared state), if anyone.
  public static func leader(stateDirectory: String, state: StateStore) throws -> (holder: LockHolder, lease: LockLease?)? {
    if let shared = try state.backend() {
      return try shared.lockLease(name: lockName).map { ($0.holder, $0) }
    }
    let directory = stateDirectory + "/locks"
    guard PoolLock.isHeld(pool: lockName, directory: directory, state: state) else { return nil }
    return PoolLock.holder(pool: lockName, directory: directory, state: state).map { ($0, nil) }
  }
}
