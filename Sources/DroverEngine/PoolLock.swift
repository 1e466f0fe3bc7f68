import DroverBasics
import Foundation

/// Who holds a pool lock.
public struct LockHolder: Codable, Sendable, Hashable {
  public var pid: Int32
  public var host: String
  public var command: String
  public var started: Date

  public init(pid: Int32, host: String, command: String, started: Date) {
    self.pid = pid
    self.host = host
    self.command = command
    self.started = started
  }

  public static func current(command: String) -> LockHolder {
    LockHolder(
      pid: getpid(), host: ProcessInfo.processInfo.hostName, command: command, started: Date())
  }
}

/// An exclusive lock per pool, held for the life of an apply.
///
/// A `NamedLock` in `<state>/locks/.pool-locks` (one descriptor per process, however many pools:
/// 2,000 pools apply under `ulimit -n 1024`); the kernel releases it when the holder exits for
/// any reason, so no stale lock survives `kill -9`. The holder writes who it is into
/// `<pool>.lock` (written and closed, never held open) so a second apply can name it.
///
/// With a shared state backend (a `StateStore` with a database) the lock is the backend's instead: held on a live
/// database session, so it excludes every machine and CI runner, and a killed holder's session
/// ends and frees it at once.
public final class PoolLock: @unchecked Sendable {
  public let pool: String
  let lock: NamedLock?
  let shared: (any SharedLock)?
  /// The state the shared lock is on (its session proves it: `Fence`).
  let backend: (any SharedStateBackend)?

  private init(pool: String, lock: NamedLock?, shared: (any SharedLock)? = nil, backend: (any SharedStateBackend)? = nil) {
    self.pool = pool
    self.lock = lock
    self.shared = shared
    self.backend = backend
  }

  /// The fencing token of a shared lock's grant (nil: a local lock).
  public var token: Int64? { shared?.token }

  deinit { shared?.release() }

  public static func describe(_ holder: LockHolder) -> String {
    "pid \(holder.pid) on \(holder.host), running '\(holder.command)' since \(ISO8601DateFormatter().string(from: holder.started))"
  }

  /// Who holds the lock: `<pool>.lock`, beside the shared lock file.
  public static func path(for pool: String, in directory: String) -> String { "\(directory)/\(pool).lock" }
  static func lockFile(in directory: String) -> String { directory + "/.pool-locks" }

  /// Takes the lock of `pool` in `state`, waiting up to `timeout` seconds (0: fail at once).
  /// `StateStore.local` is the file lock in `directory` (`state migrate` holds it beside the
  /// database's, so no apply still using the local journal writes it while it is copied).
  public static func acquire(pool: String, directory: String, command: String, timeout: Double, state: StateStore) throws -> PoolLock {
    if let shared = try state.backend() {
      guard let held = try shared.acquireLock(name: pool, holder: LockHolder.current(command: command), timeout: timeout) else {
        let who = (try? shared.lockHolder(name: pool)).flatMap { $0 }.map(describe) ?? "another session"
        throw Diagnostic.error(
          "apply.lock-held", "pool \(pool) is locked by \(who) (in \(shared.location))", subject: "pool \(pool)",
          hint: "wait for it, or retry with --lock-timeout 5m; a killed holder's lock is freed with its database session, a frozen or cut-off one's when its lease runs out")
      }
      return PoolLock(pool: pool, lock: nil, shared: held, backend: shared)
    }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let taken: NamedLock?
    do { taken = try NamedLock.acquire(pool, file: lockFile(in: directory), timeout: timeout) } catch {
      throw Diagnostic.error("apply.lock", "cannot take the lock of pool \(pool): \(error)", subject: "pool \(pool)")
    }
    guard let taken else {
      let who = holder(pool: pool, directory: directory, state: .local).map(describe) ?? "another process"
      throw Diagnostic.error(
        "apply.lock-held", "pool \(pool) is locked by \(who)", subject: "pool \(pool)",
        hint: "wait for it, retry with --lock-timeout 5m, or if that process is gone run: drover unlock \(pool)")
    }
    let data = (try? JSONEncoder.iso.encode(LockHolder.current(command: command))) ?? Data()
    let fd = open(path(for: pool, in: directory), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
    if fd >= 0 {
      _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      close(fd)
    }
    return PoolLock(pool: pool, lock: taken)
  }

  /// The holder recorded for a pool's lock, if any (meaningful while `isHeld`).
  public static func holder(pool: String, directory: String, state: StateStore) -> LockHolder? {
    if let shared = try? state.backend() { return (try? shared.lockHolder(name: pool)) ?? nil }
    let fd = open(path(for: pool, in: directory), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return nil }
    return try? JSONDecoder.iso.decode(LockHolder.self, from: Data(buffer[0..<n]))
  }

  /// Whether a live process holds the lock now.
  public static func isHeld(pool: String, directory: String, state: StateStore) -> Bool {
    if let shared = try? state.backend() { return ((try? shared.lockHolder(name: pool)) ?? nil) != nil }
    return NamedLock.isHeld(pool, file: lockFile(in: directory))
  }
}

extension JSONEncoder {
  static var iso: JSONEncoder {
    let e = JSONEncoder()
    e.dateEncodingStrategy = .iso8601
    e.outputFormatting = [.sortedKeys]
    return e
  }
}

extension JSONDecoder {
  static var iso: JSONDecoder {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
  }
}
