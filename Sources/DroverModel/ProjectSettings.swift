/// What `drover.yaml` at the project root says: the project's name and the defaults that are
/// otherwise flags.
///
/// Why a file: the project name decides which nodes are Drover's to change, and where its key,
/// locks and journal live. A name given by a flag or a default shared by every folder made two
/// checkouts trample each other's rollouts; a file in the repository makes it one decision.
public struct ProjectSettings: Sendable, Hashable {
  public var project: String
  public var imageDir: String?
  public var imagePool: String?
  public var consoleDir: String?
  public var state: StateBackend

  public init(project: String, imageDir: String? = nil, imagePool: String? = nil, consoleDir: String? = nil, state: StateBackend = .local(dir: nil)) {
    self.project = project
    self.imageDir = imageDir
    self.imagePool = imagePool
    self.consoleDir = consoleDir
    self.state = state
  }

  /// Where the project's key, locks, rollout journal and remembered hosts live. A tagged choice so
  /// a shared backend (a database) can be added without changing what `local` means.
  public enum StateBackend: Sendable, Hashable {
    /// A folder: `nil` is the machine-wide `/var/lib/drover/state/<project>`, so every checkout
    /// of the project on this machine shares one key, one set of locks and one journal.
    case local(dir: String?)
  }

  /// The folders this file names, by field, as written (relative ones are in the project folder).
  public var folders: [(field: String, path: String)] {
    var result: [(String, String)] = []
    if let imageDir { result.append(("image_dir", imageDir)) }
    if let consoleDir { result.append(("console_dir", consoleDir)) }
    if case .local(let dir?) = state { result.append(("state.dir", dir)) }
    return result
  }

  /// The machine-wide default state folder of a project.
  public static func defaultStateDirectory(project: String) -> String { "/var/lib/drover/state/\(project)" }
}
