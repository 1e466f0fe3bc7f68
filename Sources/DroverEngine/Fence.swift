import DroverBasics
import Foundation
import Synchronization

/// The locks one run acts under, asked before every step that changes a VM (#41).
///
/// Owns: proving, before each such step, that this run still holds its locks — on a shared state,
/// one round trip within what is left of the session's lease (`SharedStateBackend.checkFence`),
/// so a run that was frozen, partitioned or cut off from its database stops before it acts, once
/// another may already hold the lock. Once a check fails, every later one fails at once (the run
/// never acts again). A local state folder's locks are the kernel's, which no other machine can
/// take: nothing to prove there.
/// Must not: take or release locks (the job does), or decide anything but "stop".
public final class Fence: Sendable {
  let backend: (any SharedStateBackend)?
  /// Lock name → the fencing token it was granted with.
  let tokens: [String: Int64]
  /// Another fence proved with this one (a heal pass under `watch`: the lead, on its own session).
  let also: Fence?
  private let lost = Mutex<Diagnostic?>(nil)

  /// No locks to prove (a local state folder, or a test without any).
  public static let none = Fence(backend: nil, tokens: [:])

  /// The fence of the locks `tokens` names (lock → token), held on `backend`'s session.
  public init(backend: (any SharedStateBackend)?, tokens: [String: Int64], also: Fence? = nil) {
    self.backend = backend
    self.tokens = tokens
    self.also = also
  }

  /// The fence of `locks` (all on one state: one session proves them together), and `also`.
  public convenience init(_ locks: [PoolLock], also: Fence? = nil) {
    let shared = locks.compactMap { lock in lock.shared.map { (lock, $0) } }
    self.init(
      backend: shared.first?.0.backend,
      tokens: Dictionary(shared.map { ($0.0.pool, $0.1.token) }, uniquingKeysWith: { a, _ in a }), also: also)
  }

  /// The token of `pool`'s lock, for the journal (nil: a local lock).
  public func token(pool: String) -> Int64? { tokens[pool] }

  /// Throws `state.fenced` unless this run provably still holds its locks, before `what`.
  public func check(_ what: String) throws {
    if let lost = lost.withLock({ $0 }) { throw lost }
    do {
      try also?.check(what)
      guard let backend, !tokens.isEmpty else { return }
      try backend.checkFence(tokens, what: what)
    } catch {
      let diagnostic = Diagnostic.first(of: error, code: "state.fenced")
      lost.withLock { $0 = $0 ?? diagnostic }
      throw diagnostic
    }
  }

  /// Whether a check failed (the run acts no more).
  public var isLost: Bool { lost.withLock { $0 != nil } || (also?.isLost ?? false) }
}
