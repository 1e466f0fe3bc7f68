import Foundation
import Synchronization

/// An exclusive lock on a name (a pool, an image), as one byte of a shared lock file.
///
/// Why byte ranges of one file rather than a file per name: a lock file per pool, each held open
/// for the whole apply, ran out of descriptors at ~1,000 pools (`ulimit -n 1024`). Here every
/// name of one lock file shares a single descriptor per process: the name's lock is an
/// open-file-description lock (`LockTable.ofdSetLock`) on one byte at an offset derived from the name's
/// SHA-256 (62 bits: two names sharing a byte among thousands is out of reach). Like `flock`,
/// the kernel drops it when the holder exits for any reason, so no lock survives `kill -9`.
public final class NamedLock: @unchecked Sendable {
  public let name: String
  let table: LockTable
  let offset: Int64

  init(name: String, table: LockTable, offset: Int64) {
    self.name = name
    self.table = table
    self.offset = offset
  }

  deinit { table.release(name: name, offset: offset) }

  /// Takes `name`'s lock in the lock file `file` (created 0644, never through a link), waiting up
  /// to `timeout` seconds (0: one try); nil when another process holds it all that time.
  public static func acquire(_ name: String, file: String, timeout: Double) throws -> NamedLock? {
    let table = try LockTable.open(file)
    let offset = offset(of: name)
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if try table.tryLock(name: name, offset: offset) { return NamedLock(name: name, table: table, offset: offset) }
      if Date() >= deadline { return nil }
      usleep(50_000)
    }
  }

  /// Whether some live process (this one included) holds `name`'s lock now.
  public static func isHeld(_ name: String, file: String) -> Bool {
    guard let table = try? LockTable.open(file, create: false) else { return false }
    return table.isHeld(name: name, offset: offset(of: name))
  }

  static func offset(of name: String) -> Int64 {
    let hex = ContentDigest.of(name).hex.prefix(16)
    return Int64(bitPattern: UInt64(hex, radix: 16) ?? 0) & 0x3FFF_FFFF_FFFF_FFFF
  }
}

/// One open lock file per process and path, with the names this process holds in it.
final class LockTable: @unchecked Sendable {
  /// `F_OFD_SETLK` / `F_OFD_GETLK` (Linux ≥ 3.15): not exported by the Glibc module, which
  /// builds without `_GNU_SOURCE`.
  static let ofdSetLock: Int32 = 37
  static let ofdGetLock: Int32 = 36
  let fd: Int32
  private let held = Mutex<Set<String>>([])
  private static let tables = Mutex<[String: LockTable]>([:])

  private init(fd: Int32) { self.fd = fd }

  static func open(_ path: String, create: Bool = true) throws -> LockTable {
    try tables.withLock { tables in
      if let table = tables[path] { return table }
      let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0o644)
      guard fd >= 0 else {
        throw Diagnostic.error("lock.open", "cannot open lock file \(path): \(String(cString: strerror(errno)))", subject: path)
      }
      let table = LockTable(fd: fd)
      tables[path] = table
      return table
    }
  }

  /// One non-blocking try; a name this process already holds is refused (two holders in one
  /// process would both think they own it, since OFD locks of one descriptor never conflict).
  func tryLock(name: String, offset: Int64) throws -> Bool {
    try held.withLock { held in
      if held.contains(name) { return false }
      var lock = flockRange(type: Int16(F_WRLCK), offset: offset)
      if fcntl(fd, LockTable.ofdSetLock, &lock) == 0 {
        held.insert(name)
        return true
      }
      if errno == EAGAIN || errno == EACCES { return false }
      throw Diagnostic.error("lock.take", "cannot lock \(name): \(String(cString: strerror(errno)))", subject: name)
    }
  }

  func isHeld(name: String, offset: Int64) -> Bool {
    if held.withLock({ $0.contains(name) }) { return true }
    var lock = flockRange(type: Int16(F_WRLCK), offset: offset)
    guard fcntl(fd, LockTable.ofdGetLock, &lock) == 0 else { return false }
    return lock.l_type != Int16(F_UNLCK)
  }

  func release(name: String, offset: Int64) {
    held.withLock { held in
      var lock = flockRange(type: Int16(F_UNLCK), offset: offset)
      _ = fcntl(fd, LockTable.ofdSetLock, &lock)
      held.remove(name)
    }
  }

  func flockRange(type: Int16, offset: Int64) -> flock {
    var lock = flock()
    lock.l_type = type
    lock.l_whence = Int16(SEEK_SET)
    lock.l_start = Int(offset)
    lock.l_len = 1
    lock.l_pid = 0
    return lock
  }
}
