import DroverBasics
import Foundation

/// Who holds a pool lock.
public struct LockHolder: Codable, Sendable, Hashable {
  public var pid: Int32
  public var host: String
  public var command: String
  public var started: Date

  public static func current(command: String) -> LockHolder {
    LockHolder(
      pid: getpid(), host: ProcessInfo.processInfo.hostName, command: command, started: Date())
  }
}

/// An exclusive lock per pool, held for the life of an apply.
///
/// `flock(2)` on a file under the project's `.drover/locks/`: the kernel releases it when the
/// holder exits for any reason, so no stale lock survives `kill -9`. The holder writes who it is
/// into the file so a second apply can name it.
public final class PoolLock: @unchecked Sendable {
  public let pool: String
  let fd: Int32

  private init(pool: String, fd: Int32) {
    self.pool = pool
    self.fd = fd
  }

  deinit {
    flock(fd, LOCK_UN)
    close(fd)
  }

  public static func path(for pool: String, in directory: String) -> String { "\(directory)/\(pool).lock" }

  /// Takes the lock of `pool`, waiting up to `timeout` seconds (0: fail at once).
  public static func acquire(pool: String, directory: String, command: String, timeout: Double) throws -> PoolLock {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let file = path(for: pool, in: directory)
    let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw Diagnostic.error("apply.lock", "cannot open lock file \(file): \(String(cString: strerror(errno)))")
    }
    let deadline = Date().addingTimeInterval(timeout)
    while flock(fd, LOCK_EX | LOCK_NB) != 0 {
      if Date() >= deadline {
        let holder = readHolder(fd)
        close(fd)
        let who = holder.map {
          "pid \($0.pid) on \($0.host), running '\($0.command)' since \(ISO8601DateFormatter().string(from: $0.started))"
        } ?? "another process"
        throw Diagnostic.error(
          "apply.lock-held", "pool \(pool) is locked by \(who)", subject: "pool \(pool)",
          hint: "wait for it, retry with --lock-timeout 5m, or if that process is gone run: drover unlock \(pool)")
      }
      usleep(100_000)
    }
    let data = (try? JSONEncoder.iso.encode(LockHolder.current(command: command))) ?? Data()
    ftruncate(fd, 0)
    _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    fsync(fd)
    return PoolLock(pool: pool, fd: fd)
  }

  /// The holder recorded in a lock file, if any.
  public static func holder(pool: String, directory: String) -> LockHolder? {
    let fd = open(path(for: pool, in: directory), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readHolder(fd)
  }

  /// Whether a live process holds the lock now.
  public static func isHeld(pool: String, directory: String) -> Bool {
    let fd = open(path(for: pool, in: directory), O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 {
      flock(fd, LOCK_UN)
      return false
    }
    return true
  }

  static func readHolder(_ fd: Int32) -> LockHolder? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = pread(fd, &buffer, buffer.count, 0)
    guard n > 0 else { return nil }
    return try? JSONDecoder.iso.decode(LockHolder.self, from: Data(buffer[0..<n]))
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
