import DroverBasics
import Foundation

/// sha256 of files, remembered by (path, size, modification time) in the state folder.
///
/// Why: the bake cache key covers the kernel, busybox and every input file (~10 MB); re-hashing
/// them on every cache hit would cost more than the whole hit is allowed to.
public final class FileDigestCache: @unchecked Sendable {
  struct Entry: Codable { var size: UInt64; var mtime: Double; var sha256: String }

  let path: String
  private var entries: [String: Entry]
  private var dirty = false
  private let lock = NSLock()

  public init(stateDirectory: String) {
    path = stateDirectory + "/file-digests.json"
    entries = (FileManager.default.contents(atPath: path)).flatMap { try? JSONDecoder().decode([String: Entry].self, from: $0) } ?? [:]
  }

  /// The file's sha256 hex; throws a located `bake.input` diagnostic when it cannot be read.
  public func digest(of file: String) throws -> String {
    let resolved = realPath(file)
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
      let size = (attributes[.size] as? NSNumber)?.uint64Value, let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970
    else {
      throw Diagnostic.error("bake.input", "cannot read \(file)", subject: file, hint: "check the path in the recipe")
    }
    if let e = lock.withLock({ entries[resolved] }), e.size == size, e.mtime == mtime { return e.sha256 }
    let sha = try Self.sha256(ofFile: resolved)
    lock.withLock {
      entries[resolved] = Entry(size: size, mtime: mtime, sha256: sha)
      dirty = true
    }
    return sha
  }

  /// Streams the file through SHA-256 (no whole-file load).
  public static func sha256(ofFile path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw Diagnostic.error("bake.input", "cannot read \(path)", subject: path)
    }
    defer { try? handle.close() }
    var hasher = StreamingDigest()
    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(chunk) }
    return hasher.finalize()
  }

  public func save() {
    lock.withLock {
      guard dirty, let data = try? JSONEncoder().encode(entries) else { return }
      try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
      dirty = false
    }
  }
}

/// The canonical path with every symlink resolved (`realpath(3)`), or the path itself if it does not exist.
func realPath(_ path: String) -> String {
  guard let resolved = realpath(path, nil) else { return path }
  defer { free(resolved) }
  return String(cString: resolved)
}
