import DroverBasics
import DroverRollout
import Foundation
import Synchronization

/// The state a team shares when the project keeps it in a database (`state: {backend:
/// postgres}` in drover.yaml): pool locks held on a live database session (a killed process
/// releases its locks at once) and the rollout journal as rows, readable from any machine.
/// `RolloutJournal` and `PoolLock` use it when one is configured, the local folder otherwise.
///
/// The port is here, in the engine; the adapter (`DroverPostgres`) implements it. Every call
/// returns or throws within the backend's deadline.
public protocol SharedStateBackend: AnyObject, Sendable {
  /// Where the state is, for messages (the URL without a password).
  var location: String { get }
  /// Takes the lock `name` for `holder`, waiting up to `timeout` seconds; nil when another
  /// session holds it at the deadline.
  func acquireLock(name: String, holder: LockHolder, timeout: Double) throws -> (any SharedLock)?
  /// Who holds the lock `name` now (a live session), if anyone.
  func lockHolder(name: String) throws -> LockHolder?
  /// The pool's journal records numbered above `after`, in order (0: all of them).
  func journalRecords(pool: String, after: Int) throws -> [JournalRecord]
  /// Appends the record `make(seq, time)` with the next sequence number of the pool's journal,
  /// committed before it returns.
  func appendJournal(pool: String, _ make: (Int, Double) -> JournalRecord) throws -> JournalRecord
  /// Pools with a journal.
  func journalPools() throws -> [String]
  /// Writes `records` (a local journal, as they are: numbers and times) as the pool's journal,
  /// all or nothing; refused when the pool has a journal here already.
  func importJournal(pool: String, records: [JournalRecord]) throws
  /// The pool's heal ledger as `HealLedger` wrote it (a sealed JSON document); nil when none, or
  /// when it is over `maxBytes` (not a ledger Drover wrote: never fetched).
  func healLedger(pool: String, maxBytes: Int) throws -> [UInt8]?
  /// Replaces the pool's heal ledger, committed before it returns.
  func writeHealLedger(pool: String, document: [UInt8]) throws
  /// Proves, in one round trip and within what is left of this session's lease, that the session
  /// still holds every lock of `tokens` (a lock's name → the fencing token it was granted with);
  /// throws `state.fenced` otherwise, and then the caller acts no more (#41).
  func checkFence(_ tokens: [String: Int64], what: String) throws
  /// Who holds the lock `name` now, with the lease they renew, if anyone.
  func lockLease(name: String) throws -> LockLease?
  /// Ends the database session `session` when it still holds the lock `name` and its lease ran out
  /// (its locks go with it); false when that is no longer so.
  func endExpiredHolder(name: String, session: Int64) throws -> Bool
}

/// A lock held on a shared backend, until released, its process dies or its lease runs out.
public protocol SharedLock: AnyObject, Sendable {
  func release()
  /// The fencing token of this grant: larger than every grant's before it in the database.
  var token: Int64 { get }
}

/// A shared lock's holder as the database sees it: the session, its token and its lease.
public struct LockLease: Sendable, Hashable {
  public var holder: LockHolder
  /// The database session holding it (what `pg_terminate_backend` ends).
  public var session: Int64
  public var token: Int64?
  /// The lease the holder renews, in seconds (nil: a Drover without leases holds it).
  public var lease: Double?
  /// Seconds since the holder last renewed it, by the database's clock.
  public var renewedAgo: Double?
  /// Seconds its session has been in its current statement (nil: idle, waiting for its holder).
  public var busyFor: Double? = nil

  public init(holder: LockHolder, session: Int64, token: Int64?, lease: Double?, renewedAgo: Double?) {
    self.holder = holder
    self.session = session
    self.token = token
    self.lease = lease
    self.renewedAgo = renewedAgo
  }

  /// Whether the holder is stuck: it stopped renewing for longer than its lease while its
  /// session sits in one statement as long (an idle session that stops renewing is ended by the
  /// server itself) — or it never had a lease (an older Drover: it cannot say it lives).
  public var expired: Bool {
    guard let lease, let renewedAgo else { return true }
    return renewedAgo > lease && (busyFor ?? 0) > lease
  }
}

/// Where one run keeps the project's state (#34: a value passed down, never a process global):
/// the local state folder, or a shared database reached through a session opened on first use
/// (so commands that never lock or journal never connect). `close()` drops the session; the
/// next use connects afresh — `watch` makes a new store for every pass, so a database that
/// restarted is one pass's problem, never the service's for good.
public final class StateStore: Sendable {
  /// Locks and journals in the state folder.
  public static let local = StateStore(nil)

  private let connect: (@Sendable () throws -> any SharedStateBackend)?
  private let slot = Mutex<Slot>(Slot())
  struct Slot {
    var backend: (any SharedStateBackend)?
    /// Why the last connect failed: every later use reports it again instead of connecting once
    /// more (a refused server is asked once; its first, telling error is the one shown), until
    /// `close()`.
    var failure: (any Error)?
  }

  /// - Parameter connect: how to reach the shared backend; nil: local state.
  public init(_ connect: (@Sendable () throws -> any SharedStateBackend)?) {
    self.connect = connect
  }

  /// The shared backend, connecting on first use; nil when the state is local.
  public func backend() throws -> (any SharedStateBackend)? {
    guard let connect else { return nil }
    return try slot.withLock { s in
      if let backend = s.backend { return backend }
      if let failure = s.failure { throw failure }
      do {
        let backend = try connect()
        s.backend = backend
        return backend
      } catch {
        s.failure = error
        throw error
      }
    }
  }

  /// Drops the session (it closes once nothing uses it) and a remembered connect failure.
  public func close() {
    slot.withLock {
      $0.backend = nil
      $0.failure = nil
    }
  }

  /// Whether the state is in a shared backend (without connecting).
  public var isShared: Bool { connect != nil }
}
