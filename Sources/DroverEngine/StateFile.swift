import Foundation

/// Reads a small file of Drover's state folder as untrusted input: only a regular file, never
/// through a symlink (`O_NOFOLLOW`), never blocking on a FIFO, and at most `maxBytes` (read in a
/// loop, so a short read is never taken for the whole file). The hosts file and the project key
/// both go through here.
enum StateFile {
  struct Contents {
    var bytes: [UInt8]
    /// The owner and permission bits, for files that must be private (the key).
    var owner: uid_t
    var mode: mode_t
  }

  /// The contents, nil when the file does not exist, or why it cannot be read (`tooLarge` is
  /// the reason given for a file over `maxBytes`, such as "over 1 MiB").
  static func read(_ path: String, maxBytes: Int, tooLarge: String) -> Result<Contents?, StateFileProblem> {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    if fd < 0 && errno == ENOENT { return .success(nil) }
    guard fd >= 0 else { return .failure(StateFileProblem(String(cString: strerror(errno)))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .failure(StateFileProblem("not a regular file")) }
    var data = [UInt8](repeating: 0, count: maxBytes + 1)
    var count = 0
    while count < data.count {
      let n = data.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + count, $0.count - count) }
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { return .failure(StateFileProblem(String(cString: strerror(errno)))) }
      if n == 0 { break }
      count += n
    }
    guard count <= maxBytes else { return .failure(StateFileProblem(tooLarge)) }
    return .success(Contents(bytes: Array(data[..<count]), owner: st.st_uid, mode: st.st_mode))
  }
}

/// Why a state file could not be read, in words for a diagnostic.
struct StateFileProblem: Error {
  var reason: String
  init(_ reason: String) { self.reason = reason }
}
