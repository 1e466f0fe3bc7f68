import DroverBasics
import Foundation

/// Where a project's record key lives: `$DROVER_PROJECT_KEY`, else `<state>/key`.
///
/// Why not in the repository: whoever holds the key can write records Drover trusts. The state
/// folder is machine-wide and root's (0700, the file 0600); CI and other machines get the key as
/// one line through `DROVER_PROJECT_KEY` (`drover key export`). The file is read as untrusted: a
/// regular file (never through a symlink), at most 4 KiB, of the project it is named for.
public enum ProjectKeyStore {
  public static let environmentVariable = "DROVER_PROJECT_KEY"

  public static func path(in stateDirectory: String) -> String { stateDirectory + "/key" }

  /// The key, or nil when neither the environment nor the state folder has one.
  public static func load(
    project: String, stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(Diagnostic) -> RecordKey? {
    if let text = environment[environmentVariable], !text.isEmpty {
      return try check(RecordKey.parse(text), project: project, source: "$\(environmentVariable)")
    }
    let file = path(in: stateDirectory)
    let contents: StateFile.Contents
    switch StateFile.read(file, maxBytes: 4096, tooLarge: "over 4 KiB") {
    case .success(nil): return nil
    case .success(let read?): contents = read
    case .failure(let problem): throw unreadable(file, problem.reason)
    }
    // Whoever can write the key can forge records: it must be ours and readable by nobody else.
    guard contents.owner == geteuid(), contents.mode & 0o077 == 0 else {
      throw unreadable(file, "it must belong to this user (uid \(geteuid())) with no access for group or others (mode 0600)")
    }
    return try check(RecordKey.parse(String(decoding: contents.bytes, as: UTF8.self)), project: project, source: file)
  }

  public static func check(_ parsed: Result<RecordKey, RecordKey.KeyTextProblem>, project: String, source: String) throws(Diagnostic) -> RecordKey {
    guard case .success(let key) = parsed else {
      throw Diagnostic.error(
        "key.invalid", "\(source) does not hold a Drover project key", subject: source,
        hint: "a key is one line 'drover-key-1:<project>:<64 hex digits>', as drover key export prints it")
    }
    guard key.project == project else {
      throw Diagnostic.error(
        "key.project", "\(source) holds the key of project '\(key.project)', not of '\(project)'", subject: source,
        hint: "export the key of project \(project) (drover key export on a machine that has it)")
    }
    return key
  }

  /// Writes `key` as the project's key; refuses when a different key is already there (losing a
  /// key makes every record of the project unverifiable). Created exclusively, so two processes
  /// creating a key at once never both win: the loser gets the winner's key back.
  /// - Parameter keepExisting: when creating a fresh key, a key another process stored first wins
  ///   (both then seal with it); when importing, a different existing key is an error.
  @discardableResult
  public static func store(_ key: RecordKey, stateDirectory: String, keepExisting: Bool = false) throws(Diagnostic) -> RecordKey {
    let file = path(in: stateDirectory)
    do {
      try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw Diagnostic.error("key.write", "cannot create the state folder \(stateDirectory): \(error.localizedDescription)", subject: stateDirectory)
    }
    let temporary = "\(file).\(getpid()).new"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw Diagnostic.error("key.write", "cannot write \(temporary): \(String(cString: strerror(errno)))", subject: file) }
    let line = Array((key.exported + "\n").utf8)
    let written = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    let synced = fsync(fd) == 0
    close(fd)
    defer { unlink(temporary) }
    guard written == line.count, synced else { throw Diagnostic.error("key.write", "cannot write \(temporary)", subject: file) }
    // link(2) fails if the key exists: never replace a key.
    if link(temporary, file) != 0 {
      guard errno == EEXIST else { throw Diagnostic.error("key.write", "cannot create \(file): \(String(cString: strerror(errno)))", subject: file) }
      guard let existing = try load(project: key.project, stateDirectory: stateDirectory, environment: [:]) else {
        throw Diagnostic.error("key.write", "cannot read \(file)", subject: file)
      }
      guard existing == key || keepExisting else {
        throw Diagnostic.error(
          "key.exists", "\(file) already holds another key of project \(key.project) (id \(existing.id))", subject: file,
          hint: "records sealed with it would no longer verify; if it really is wrong, move it away first")
      }
      return existing
    }
    return key
  }

  static func unreadable(_ file: String, _ why: String) -> Diagnostic {
    .error("key.unreadable", "cannot read the project key \(file): \(why)", subject: file, hint: "it must be a regular file written by drover (mode 0600)")
  }
}
