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
  /// The project's hosts, defined once: pool files name them.
  public var hosts: [HostEntry]
  /// The Prometheus analysis gates query (`analysis: {prometheus: URL}`, #43); nil: none, and a
  /// pool with gates is refused before its rollout starts.
  public var prometheus: String? = nil
  /// `window:`: the default maintenance window of every pool that names none (#44).
  public var window: MaintenanceWindow? = nil

  public init(
    project: String, imageDir: String? = nil, imagePool: String? = nil, consoleDir: String? = nil, state: StateBackend = .local(dir: nil),
    hosts: [HostEntry] = []
  ) {
    self.hosts = hosts
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
    /// A PostgreSQL database (`postgres://user@host:port/db`; the password from
    /// `DROVER_STATE_PASSWORD`): locks and the rollout journal are shared by every machine and CI
    /// runner, and so is the heal ledger; the key and the remembered hosts stay on each machine.
    /// `lease` (seconds; nil: 15 s) bounds how long a frozen, crashed or cut-off holder keeps its
    /// locks (#41).
    case postgres(url: String, lease: Double?)
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

/// A host of the project (`hosts:` in drover.yaml): pool files name it; records and plans speak
/// its URI, which carries no trust material (that comes from the machine's configuration, keyed
/// by `name`).
public struct HostEntry: Sendable, Hashable {
  public var name: String
  public var uri: String
  /// Drover's image pool folder on that host (its own file system); nil: the local image folder.
  public var imageDir: String?
  /// Overcommit ratios for capacity-aware placement.
  public var limits: HostLimits
  /// The share of the project's nodes on this host that may be unhealthy at once before heal
  /// counts the host in outage (then nothing on it is reset or replaced); nil: 50 %.
  public var outageThreshold: Double?

  public static let defaultOutageThreshold = 0.5

  public init(name: String, uri: String, imageDir: String? = nil, limits: HostLimits = HostLimits(), outageThreshold: Double? = nil) {
    self.limits = limits
    self.outageThreshold = outageThreshold
    self.name = name
    self.uri = uri
    self.imageDir = imageDir
  }
}

/// How this machine reaches a project's hosts: pure, from the project's entries and the
/// machine's configuration.
public struct HostDirectory: Sendable, Hashable {
  public var entries: [HostEntry]
  public var machine: MachineSettings

  public init(entries: [HostEntry], machine: MachineSettings) {
    self.entries = entries
    self.machine = machine
  }

  /// The URI a pool file's `hosts:` item names: a project entry, a machine entry with a URI, or nil.
  public func uri(named name: String) -> String? {
    entries.first { $0.name == name }?.uri ?? machine.hosts[name]?.uri
  }

  /// The entry whose URI this is (records and plans speak URIs).
  public func entry(for uri: String) -> HostEntry? { entries.first { $0.uri == uri } }

  /// The URI to open for `uri`: with the machine's trust material for that host's name added
  /// (`keyfile=…&known_hosts=…`; for libssh also `sshauth=privkey` when a key is given).
  public func connectURI(for uri: String) -> String {
    guard let name = entry(for: uri)?.name, let trust = machine.hosts[name], !trust.parameters.isEmpty else { return uri }
    var parameters = trust.parameters
    if uri.hasPrefix("qemu+libssh") && parameters["keyfile"] != nil && parameters["sshauth"] == nil { parameters["sshauth"] = "privkey" }
    let query = parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\(HostDirectory.escaped($0.value))" }.joined(separator: "&")
    return uri + (uri.contains("?") ? "&" : "?") + query
  }

  /// Whether `uri` goes unverified (plain TCP, or TLS without verification).
  public static func isUnverified(_ uri: String) -> Bool {
    let scheme = uri.prefix { $0 != ":" }
    return scheme.hasSuffix("+tcp") || uri.contains("no_verify=1")
  }

  /// Why `uri` may not be opened (an unverified transport the machine did not allow), or nil.
  public func insecureProblem(_ uri: String) -> String? {
    guard HostDirectory.isUnverified(uri) else { return nil }
    if let name = entry(for: uri)?.name, machine.hosts[name]?.insecure == true { return nil }
    if machine.hosts.values.contains(where: { $0.uri == uri && $0.insecure }) { return nil }
    return "its transport verifies nobody, and the machine's configuration does not allow that for it (insecure: true)"
  }

  /// Percent-encoding of a parameter value, byte by byte.
  static func escaped(_ value: String) -> String {
    let safe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-_.~".utf8)
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for b in value.utf8 {
      if safe.contains(b) { out.append(b) } else { out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]] }
    }
    return String(decoding: out, as: UTF8.self)
  }
}
