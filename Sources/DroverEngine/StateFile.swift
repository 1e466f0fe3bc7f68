import DroverBasics
import Foundation

/// Reads a small file of Drover's state folder as untrusted input: only a regular file, never
/// through a symlink (`O_NOFOLLOW`), never blocking on a FIFO, and at most `maxBytes` (read in a
/// loop, so a short read is never taken for the whole file). The hosts file and the project key
/// both go through here, and the state database's password file.
public enum StateFile {
  public struct Contents {
    public var bytes: [UInt8]
    /// The owner and permission bits, for files that must be private (the key).
    public var owner: uid_t
    public var mode: mode_t
  }

  /// The contents, nil when the file does not exist, or why it cannot be read (`tooLarge` is
  /// the reason given for a file over `maxBytes`, such as "over 1 MiB").
  public static func read(_ path: String, maxBytes: Int, tooLarge: String) -> Result<Contents?, StateFileProblem> {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    if fd < 0 && errno == ENOENT { return .success(nil) }
    guard fd >= 0 else { return .failure(StateFileProblem(String(cString: strerror(errno)))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .failure(StateFileProblem("not a regular file")) }
    // Sized to the file (plus room to see it grow), never to the limit: a rollout reads its
    // journal before every decision, and zeroing 256 MiB each time cost ~25 ms a read.
    let limit = maxBytes + 1
    var data = [UInt8](repeating: 0, count: min(limit, max(0, Int(st.st_size)) + 4096))
    var count = 0
    while count < limit {
      if count == data.count { data += [UInt8](repeating: 0, count: min(limit - count, max(4096, count))) }
      let n = data.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + count, $0.count - count) }
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { return .failure(StateFileProblem(String(cString: strerror(errno)))) }
      if n == 0 { break }
      count += n
    }
    guard count <= maxBytes else { return .failure(StateFileProblem(tooLarge)) }
    return .success(Contents(bytes: Array(data[..<count]), owner: st.st_uid, mode: st.st_mode))
  }

  /// Runs `body` holding an exclusive lock on `<path>.lock`. Why: two applies of different
  /// pools run at once; each re-reads the file under the lock, so neither writes back a stale
  /// copy it read before the other's write. Kernel locks go with their holder, even on kill -9.
  static func locked<T>(_ path: String, _ body: () throws(Diagnostic) -> T) throws(Diagnostic) -> T {
    let lockFile = path + ".lock"
    let lock = open(lockFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard lock >= 0 else { throw Diagnostic.error("state.lock", "cannot open \(lockFile): \(String(cString: strerror(errno)))", subject: lockFile) }
    defer { close(lock) }
    // Holders keep it for one small read and write; a holder stuck for 10 s is an error, not a hang.
    let deadline = Date().addingTimeInterval(10)
    while flock(lock, LOCK_EX | LOCK_NB) != 0 {
      guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
        throw Diagnostic.error(
          "state.lock", "\(lockFile) stayed locked for 10 s", subject: lockFile, hint: "another Drover is writing \(path); try again once it is done")
      }
      usleep(20_000)
    }
    return try body()
  }

  /// Replaces `path` atomically (a temporary file renamed over it) with `bytes`, mode `mode`.
  static func replace(_ path: String, with bytes: [UInt8], mode: mode_t) -> StateFileProblem? {
    let temporary = "\(path).\(getpid()).tmp"
    // Never written through something planted under that name (a link to another file).
    unlink(temporary)
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    guard fd >= 0 else { return StateFileProblem(String(cString: strerror(errno))) }
    var written = 0
    while written < bytes.count {
      let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, bytes.count - written) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        let problem = StateFileProblem(String(cString: strerror(errno)))
        close(fd)
        unlink(temporary)
        return problem
      }
      written += n
    }
    fchmod(fd, mode)
    let synced = fsync(fd) == 0
    close(fd)
    guard synced, rename(temporary, path) == 0 else {
      let problem = StateFileProblem(String(cString: strerror(errno)))
      unlink(temporary)
      return problem
    }
    return nil
  }
}

extension StateFile {
  /// Makes `path` (and its missing parents) as Drover's own folder, then checks it is one: a real
  /// directory (no symlink in its place), owned by this user, writable by nobody else. Why: who
  /// can write the state folder can plant links that make Drover read or write other files, or
  /// replace the journal.
  static func ownDirectory(_ path: String) throws(Diagnostic) {
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
      throw Diagnostic.error("state.folder", "cannot create the state folder \(path): \(error)", subject: path, hint: "the state folder must be writable by Drover's user")
    }
    var st = stat()
    guard lstat(path, &st) == 0 else {
      throw Diagnostic.error("state.folder", "cannot read the state folder \(path): \(String(cString: strerror(errno)))", subject: path)
    }
    let problem: String? =
      (st.st_mode & S_IFMT) != S_IFDIR ? "it is not a directory (a symlink or a file is in its place)"
      : st.st_uid != geteuid() ? "it belongs to uid \(st.st_uid), not to this user (uid \(geteuid()))"
      : st.st_mode & 0o022 != 0 ? "others may write it (mode \(String(st.st_mode & 0o777, radix: 8)))" : nil
    if let problem {
      throw Diagnostic.error(
        "state.folder", "the state folder \(path) cannot be trusted: \(problem)", subject: path,
        hint: "it must be a real directory of Drover's user that nobody else can write (chmod go-w, or remove what is in its place)")
    }
  }

  /// Opens a file of the state folder for appending or locking: never through a link, created 0600.
  static func openPrivate(_ path: String, _ flags: Int32) -> Int32 {
    open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0o600)
  }
}

/// Why a state file could not be read, in words for a diagnostic.
public struct StateFileProblem: Error {
  public var reason: String
  init(_ reason: String) { self.reason = reason }
}
