import Foundation

/// File-system work in folders someone else may also write (an image folder, its staging and
/// build-machine folders): every folder below a trusted root is opened with `O_NOFOLLOW`, and
/// removal walks by descriptor (`openat`/`unlinkat`), so a planted symlink is an error or is
/// removed as a link, never followed to delete or write elsewhere.
public enum SafeFiles {
  /// `realpath(3)`: every link resolved, or nil when the path does not exist.
  public static func realPath(_ path: String) -> String? {
    guard let pointer = realpath(path, nil) else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
  }

  /// Whether `path` is a regular, non-empty file itself (a planted symlink never counts).
  public static func isNonEmptyFile(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_size > 0
  }

  /// `root/name` as a real folder of Drover's own (created 0755 when missing): refused when it
  /// is a symlink, not a folder, owned by another user, or writable by group or others — a
  /// folder someone else made could hold links Drover would then write through.
  /// - Parameter fresh: the folder is this run's alone (`<key>-<pid>`): whatever is at the name
  ///   is removed first (a leftover of an earlier process that had the same pid), then made anew.
  @discardableResult
  public static func directory(_ name: String, in root: String, fresh: Bool = false) throws -> String {
    let path = root + "/" + name
    guard !name.isEmpty, !name.contains("/"), name != "..", name != "." else {
      throw Diagnostic.error("io.path", "'\(Terminal.escaped(name))' is not a folder name", subject: path)
    }
    let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard rootFD >= 0 else {
      throw Diagnostic.error("io.path", "cannot open \(root): \(String(cString: strerror(errno)))", subject: root)
    }
    defer { close(rootFD) }
    if fresh { try removeTree(Array(name.utf8CString), at: rootFD, shown: path) }
    if mkdirat(rootFD, name, 0o755) != 0 && (fresh || errno != EEXIST) {
      throw Diagnostic.error("io.path", "cannot create \(path): \(String(cString: strerror(errno)))", subject: path)
    }
    let fd = openat(rootFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      let why = errno == ELOOP || errno == ENOTDIR ? "it is a symlink or not a folder" : String(cString: strerror(errno))
      throw unsafe(path, why)
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw unsafe(path, String(cString: strerror(errno))) }
    if let why = foreignReason(st) { throw unsafe(path, why) }
    return path
  }

  /// Why a folder with this status is not one Drover may write into, or nil.
  public static func foreignReason(_ st: stat) -> String? {
    if st.st_uid != geteuid() { return "it belongs to uid \(st.st_uid), not to Drover's user" }
    if st.st_mode & 0o022 != 0 { return "others can write it (mode \(String(st.st_mode & 0o777, radix: 8)))" }
    return nil
  }

  static func unsafe(_ path: String, _ why: String) -> Diagnostic {
    Diagnostic.error(
      "io.unsafe-folder", "refusing \(path): \(why)", subject: path,
      hint: "Drover never follows a link or writes into a folder it did not make; remove \(path) and run again")
  }

  /// Removes the regular file or link `name` in `root` (never a folder, never through a link).
  public static func removeFile(_ name: String, in root: String) {
    guard !name.contains("/"), name != ".", name != ".." else { return }
    let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard rootFD >= 0 else { return }
    defer { close(rootFD) }
    _ = unlinkat(rootFD, name, 0)
  }

  /// The names in `root/name`, or [] when it does not exist; refused when it is a symlink.
  public static func entries(of name: String, in root: String) throws -> [String] {
    let path = root + "/" + name
    var st = stat()
    if lstat(path, &st) != 0 { return [] }
    guard (st.st_mode & S_IFMT) == S_IFDIR else { throw unsafe(path, "it is a symlink or not a folder") }
    if let why = foreignReason(st) { throw unsafe(path, why) }
    return (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
  }

  /// Removes `entry` inside `root/name` (a file, a link or a whole tree) without following any
  /// link: the folder chain is opened with `O_NOFOLLOW` and the tree walked by descriptor.
  public static func remove(_ entry: String, inFolder name: String, of root: String) throws {
    let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard rootFD >= 0 else { return }
    defer { close(rootFD) }
    let fd = openat(rootFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      if errno == ENOENT { return }
      throw Diagnostic.error("io.unsafe-folder", "refusing \(root)/\(name): it is a symlink or not a folder", subject: "\(root)/\(name)")
    }
    defer { close(fd) }
    try removeTree(Array(entry.utf8CString), at: fd, shown: "\(root)/\(name)/\(entry)")
  }

  /// `unlinkat` of `name` (raw bytes, NUL-terminated: a name that is not UTF-8 is still the name
  /// on disk) in the folder `dirFD`; a folder is emptied by descriptor first.
  static func removeTree(_ name: [CChar], at dirFD: Int32, shown: String, depth: Int = 0) throws {
    let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard !name.prefix(while: { $0 != 0 }).contains(0x2F), text != ".", text != ".." else { return }
    if unlinkat(dirFD, name, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR else {
      throw Diagnostic.error("io.remove", "cannot remove \(Terminal.escaped(shown)): \(String(cString: strerror(errno)))", subject: shown)
    }
    guard depth < 64 else { throw Diagnostic.error("io.remove", "\(shown) is nested too deep to remove", subject: shown) }
    let child = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard child >= 0 else { throw Diagnostic.error("io.remove", "cannot open \(shown): \(String(cString: strerror(errno)))", subject: shown) }
    guard let dir = fdopendir(child) else {
      close(child)
      throw Diagnostic.error("io.remove", "cannot list \(shown)", subject: shown)
    }
    defer { closedir(dir) }
    var names: [[CChar]] = []
    while let e = readdir(dir) {
      let raw = withUnsafeBytes(of: e.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }) }
      if raw != [0x2E] && raw != [0x2E, 0x2E] { names.append(raw + [0]) }
    }
    for n in names {
      let shownChild = shown + "/" + String(decoding: n.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
      try removeTree(n, at: dirfd(dir), shown: shownChild, depth: depth + 1)
    }
    if unlinkat(dirFD, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
      throw Diagnostic.error("io.remove", "cannot remove \(Terminal.escaped(shown)): \(String(cString: strerror(errno)))", subject: shown)
    }
  }
}
