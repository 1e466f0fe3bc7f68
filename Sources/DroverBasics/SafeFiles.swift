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

  /// `root/name` as a real folder (created 0755 when missing): refused when it is a symlink or
  /// anything but a folder. `name` is one path component Drover chose.
  @discardableResult
  public static func directory(_ name: String, in root: String) throws -> String {
    let path = root + "/" + name
    guard !name.isEmpty, !name.contains("/"), name != "..", name != "." else {
      throw Diagnostic.error("io.path", "'\(Terminal.escaped(name))' is not a folder name", subject: path)
    }
    let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard rootFD >= 0 else {
      throw Diagnostic.error("io.path", "cannot open \(root): \(String(cString: strerror(errno)))", subject: root)
    }
    defer { close(rootFD) }
    if mkdirat(rootFD, name, 0o755) != 0 && errno != EEXIST {
      throw Diagnostic.error("io.path", "cannot create \(path): \(String(cString: strerror(errno)))", subject: path)
    }
    let fd = openat(rootFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      let why = errno == ELOOP || errno == ENOTDIR ? "it is a symlink or not a folder" : String(cString: strerror(errno))
      throw Diagnostic.error(
        "io.unsafe-folder", "refusing \(path): \(why)", subject: path,
        hint: "Drover never follows a link it did not make; remove \(path) and run again")
    }
    close(fd)
    return path
  }

  /// The names in `root/name`, or [] when it does not exist; refused when it is a symlink.
  public static func entries(of name: String, in root: String) throws -> [String] {
    let path = root + "/" + name
    var st = stat()
    if lstat(path, &st) != 0 { return [] }
    guard (st.st_mode & S_IFMT) == S_IFDIR else {
      throw Diagnostic.error(
        "io.unsafe-folder", "refusing \(path): it is a symlink or not a folder", subject: path,
        hint: "Drover never follows a link it did not make; remove \(path) and run again")
    }
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
    try removeTree(entry, at: fd, shown: "\(root)/\(name)/\(entry)")
  }

  /// `unlinkat` of `name` in the folder `dirFD`; a folder is emptied by descriptor first.
  static func removeTree(_ name: String, at dirFD: Int32, shown: String, depth: Int = 0) throws {
    guard !name.contains("/"), name != ".", name != ".." else { return }
    if unlinkat(dirFD, name, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR || errno == EPERM else {
      throw Diagnostic.error("io.remove", "cannot remove \(shown): \(String(cString: strerror(errno)))", subject: shown)
    }
    guard depth < 64 else { throw Diagnostic.error("io.remove", "\(shown) is nested too deep to remove", subject: shown) }
    let child = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard child >= 0 else { throw Diagnostic.error("io.remove", "cannot open \(shown): \(String(cString: strerror(errno)))", subject: shown) }
    guard let dir = fdopendir(child) else {
      close(child)
      throw Diagnostic.error("io.remove", "cannot list \(shown)", subject: shown)
    }
    var names: [String] = []
    while let e = readdir(dir) {
      let n = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
      if n != "." && n != ".." { names.append(n) }
    }
    defer { closedir(dir) }
    for n in names { try removeTree(n, at: dirfd(dir), shown: shown + "/" + n, depth: depth + 1) }
    if unlinkat(dirFD, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
      throw Diagnostic.error("io.remove", "cannot remove \(shown): \(String(cString: strerror(errno)))", subject: shown)
    }
  }
}
