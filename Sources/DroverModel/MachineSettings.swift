import DroverBasics

/// What this machine's administrator allows Drover to use, beyond the project folder.
///
/// Why a machine file (`/etc/drover/config.yaml`, or `$DROVER_CONFIG`): specs, recipes and
/// `drover.yaml` arrive in pull requests, so none of them may widen what Drover reads or whom it
/// trusts. Host files a spec names (a kernel, an initrd, a base image, a kubeconfig) must lie in
/// the project folder or under a root allowed here; a host URI that carries trust material
/// (`keyfile=`, `known_hosts=`, `command=`, `ext`) can only be a named entry here.
public struct MachineSettings: Sendable, Hashable {
  /// Absolute, normalised folders (or files) that spec-named host files may lie in.
  public var allowedRoots: [String]
  /// The kernel for recipes that name none; the machine's choice, so always allowed.
  public var kernel: String
  /// Named host entries: pool files name them in `hosts:`. Each carries the trust material
  /// for a host of that name (a project's host entry gives the URI, this gives the keys).
  public var hosts: [String: MachineHost]
  /// How this machine trusts and logs in to a state database, keyed by its `host:port` (the
  /// server `state.url` names): the CA its certificate must chain to, the password file, or
  /// `insecure` plaintext. A project only names the server; trust and credentials are the
  /// machine's (#40).
  public var stateServers: [String: MachineStateServer] = [:]
  /// The CA (PEM path) an `https` Prometheus's certificate must chain to, keyed by the `host:port`
  /// `analysis.prometheus` names (#43): as for state servers, the project names the server and
  /// the machine says whom to trust.
  public var metricsServers: [String: String] = [:]
  /// The file these came from, for diagnostics (nil: defaults only).
  public var file: String?

  public init(allowedRoots: [String] = [], kernel: String = MachineSettings.defaultKernel, hosts: [String: MachineHost] = [:], file: String? = nil) {
    self.allowedRoots = allowedRoots
    self.kernel = kernel
    self.hosts = hosts
    self.file = file
  }

  /// The URIs of entries that name their own (what pool files may name directly, by entry).
  public var hostURIs: Set<String> { Set(hosts.values.compactMap(\.uri)) }

  public static let defaultPath = "/etc/drover/config.yaml"
  public static let defaultKernel = "/vmlinuz"

  /// Where a newcomer is told to allow a root.
  public var allowHint: String {
    "allow its folder in \(file ?? MachineSettings.defaultPath) (allow_paths: [/boot]) or in $DROVER_ALLOW_PATHS; a pool file or recipe can never allow a path itself"
  }
}

/// A host entry of the machine's configuration: how this machine reaches and trusts the host
/// a project names (keyed by the host's name).
public struct MachineHost: Sendable, Hashable {
  /// The whole URI, parameters included (then pool files may name the entry even without a
  /// project entry of that name).
  public var uri: String?
  /// Trust material added to the project's URI when connecting: `keyfile`, `known_hosts`,
  /// `pkipath` (libvirt's own parameter names).
  public var parameters: [String: String]
  /// Allows transports without verification (`qemu+tcp://`, `no_verify`); `plan` then warns.
  public var insecure: Bool

  public init(uri: String? = nil, parameters: [String: String] = [:], insecure: Bool = false) {
    self.uri = uri
    self.parameters = parameters
    self.insecure = insecure
  }
}

/// A state database entry of the machine's configuration (`state: {<host:port>: …}`).
public struct MachineStateServer: Sendable, Hashable {
  /// The CA (PEM) the server's certificate must chain to; its name must match the URL's host.
  public var ca: String?
  /// A file holding the password (mode 0600, root's or Drover's user's), when
  /// `DROVER_STATE_PASSWORD` is not set.
  public var passwordFile: String?
  /// Plaintext allowed (a loopback test server); every run warns, and the password still never
  /// leaves in a form the server could read (SCRAM only).
  public var insecure: Bool

  public init(ca: String? = nil, passwordFile: String? = nil, insecure: Bool = false) {
    self.ca = ca
    self.passwordFile = passwordFile
    self.insecure = insecure
  }
}

/// Whether a host path a spec names stays inside what may be read: the project folder (a
/// relative path, resolved against the spec's own folder, or an absolute one under the project)
/// or a root the machine allows. Lexical and pure; `HostFiles.checkResolved` repeats it on the
/// real path, links resolved, right before the file is used.
public struct HostPathPolicy: Sendable, Hashable {
  /// The project folder, absolute and normalised; nil when unknown (then only relative paths
  /// and allowed roots pass).
  public var project: String?
  public var allowed: [String]
  /// Whether files of the project may be named at all: not for trust material (a kubeconfig can
  /// name a credential program kubectl runs, and the project's files come from pull requests).
  public var allowsProjectFiles: Bool

  public init(project: String?, allowed: [String], allowsProjectFiles: Bool = true) {
    // The whole file system is no project folder (`validate` run from `/`).
    self.project = project.map(HostPathPolicy.normalised).flatMap { $0 == "/" || $0.isEmpty ? nil : $0 }
    self.allowed = allowed.map(HostPathPolicy.normalised)
    self.allowsProjectFiles = allowsProjectFiles
  }

  /// The same roots, without the project's own files: for trust material.
  public var machineOnly: HostPathPolicy { HostPathPolicy(project: nil, allowed: allowed, allowsProjectFiles: false) }

  /// Relative paths only: nothing on the host outside the spec's folder.
  public static let projectOnly = HostPathPolicy(project: nil, allowed: [])

  /// Why `path` may not be read, or nil when it may.
  public func problem(_ path: String) -> String? {
    if path.isEmpty { return "must name a file" }
    if path.utf8.count > 4096 { return "is longer than 4096 bytes" }
    if Terminal.hasControlCharacters(path) { return "must not contain control characters" }
    if path.hasPrefix("~") { return "must not start with '~' (it would be the home folder of whoever runs Drover)" }
    let parts = path.split(separator: "/", omittingEmptySubsequences: true)
    if parts.contains("..") { return "must not contain '..' components" }
    let roots = allowed.isEmpty ? "this machine allows no roots" : "this machine allows only \(allowed.joined(separator: ", "))"
    guard path.hasPrefix("/") else {
      return allowsProjectFiles ? nil : "must be an absolute path under a root this machine allows (\(roots)); the project's own files are not trusted for it"
    }
    let normal = HostPathPolicy.normalised(path)
    if allowsProjectFiles, let project, HostPathPolicy.isInside(normal, project) { return nil }
    if allowed.contains(where: { HostPathPolicy.isInside(normal, $0) }) { return nil }
    return allowsProjectFiles ? "is outside the project folder, and \(roots.replacingOccurrences(of: "allows no roots", with: "allows no other roots"))" : "is not under a root this machine allows (\(roots))"
  }

  /// `path` equals `root` or lies below it (`root` "/" holds everything).
  public static func isInside(_ path: String, _ root: String) -> Bool {
    root == "/" || path == root || path.hasPrefix(root + "/")
  }

  /// `/a//b/./c/` → `/a/b/c` (no `..` handling: paths with `..` are refused before this).
  public static func normalised(_ path: String) -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    let joined = parts.joined(separator: "/")
    return path.hasPrefix("/") ? "/" + joined : joined
  }
}

extension HostPathPolicy {
  /// `path` as written in a spec in `specFolder`: absolute as is, relative below that folder.
  public static func located(_ path: String, in specFolder: String) -> String {
    path.hasPrefix("/") ? path : (specFolder.isEmpty ? path : specFolder + "/" + path)
  }

  /// Why the file `path` (in a spec in `specFolder`) may not be read once every link is
  /// resolved, or nil. `realPath` is `realpath(3)` (nil: the path does not exist); the project
  /// folder and the allowed roots are resolved the same way, so a root that is itself a link
  /// still holds its files, while a link in the project pointing at `/etc/shadow` does not.
  public func resolvedProblem(_ path: String, in specFolder: String, realPath: (String) -> String?) -> String? {
    if let lexical = problem(path) { return lexical }
    let located = HostPathPolicy.located(path, in: specFolder)
    guard let real = realPath(located) else { return "does not exist" }
    var roots = allowed.compactMap(realPath)
    if allowsProjectFiles {
      let realProject = project.flatMap(realPath)
      if let realProject { roots.append(realProject) }
      // A relative path is in the spec's folder, which counts only while it is in the project
      // (a linked `images/` pointing elsewhere would otherwise allow all it points at).
      if !path.hasPrefix("/"), let folder = realPath(specFolder.isEmpty ? "." : specFolder),
        realProject.map({ HostPathPolicy.isInside(folder, $0) }) ?? (project == nil)
      {
        roots.append(folder)
      }
    }
    if roots.contains(where: { HostPathPolicy.isInside(real, $0) }) { return nil }
    return "resolves to \(real), outside the project folder and the roots this machine allows"
  }
}

extension HostPathPolicy {
  /// Why the folder `path` (which may not exist yet) is not inside what may be written, once
  /// links are resolved: its deepest existing ancestor is resolved and the rest appended, so a
  /// committed link `store -> /etc` in the project is seen for what it is.
  public func resolvedFolderProblem(_ path: String, realPath: (String) -> String?) -> String? {
    if let lexical = problem(path) { return lexical }
    var existing = HostPathPolicy.normalised(path)
    var rest: [String] = []
    var real = realPath(existing)
    while real == nil, existing != "/", !existing.isEmpty {
      let slash = existing.lastIndex(of: "/") ?? existing.startIndex
      rest.insert(String(existing[existing.index(after: slash)...]), at: 0)
      existing = slash == existing.startIndex ? (existing.hasPrefix("/") ? "/" : "") : String(existing[..<slash])
      real = realPath(existing.isEmpty ? "." : existing)
    }
    guard let base = real else { return "cannot be resolved" }
    let resolved = HostPathPolicy.normalised(([base] + rest).joined(separator: "/"))
    var roots = allowed.map { realPath($0) ?? $0 }
    if allowsProjectFiles, let project { roots.append(realPath(project) ?? project) }
    if roots.contains(where: { HostPathPolicy.isInside(resolved, $0) }) { return nil }
    return "resolves to \(resolved), outside the project folder and the roots this machine allows"
  }
}
