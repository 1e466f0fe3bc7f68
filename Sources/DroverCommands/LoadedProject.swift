import DroverBake
import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPostgres
import DroverSpec
import Foundation

/// The project a command runs on, read once at the start of its `run()` from its options, the
/// machine's configuration and drover.yaml (#34: configuration is a value passed down, never a
/// process global; a test that parses options configures nothing).
struct LoadedProject {
  let options: ProjectOptions
  /// This machine's configuration (allowed roots, host entries, state servers).
  let machine: MachineSettings
  /// What drover.yaml says (nil when the project has none).
  let settings: ProjectSettings?

  /// Reads the machine's configuration and drover.yaml, and checks what drover.yaml may name:
  /// its folders stay in the project, in Drover's own folders under /var/lib/drover, or under a
  /// root this machine allows (checked on the real path, so a committed link is seen through);
  /// a shared state database's transport and password file. Errors are thrown; warnings said.
  init(_ options: ProjectOptions, format: DiagnosticFormat = .human) throws {
    self.options = options
    machine = try MachineConfig.load(format: format, noColor: options.noColor)
    var (settings, problems, sources) = ProjectFileLoader.read(dir: options.dir)
    let absoluteDir = ProjectFolder.absolute(options.dir)
    if let settings {
      let defaults = [
        "/var/lib/drover/images", "/var/lib/drover/console", ProjectSettings.defaultStateDirectory(project: options.projectFlag ?? settings.project),
      ]
      let policy = HostPathPolicy(project: absoluteDir, allowed: machine.allowedRoots + defaults)
      // A host entry's image folder is on that host: the same roots, read as text.
      for entry in settings.hosts {
        if let folder = entry.imageDir, let why = HostPathPolicy(project: nil, allowed: machine.allowedRoots + ["/var/lib/drover"]).problem(folder) {
          problems.append(
            .error(
              "project.path", "host \(entry.name): image_dir '\(Terminal.escaped(folder))' in \(ProjectFile.name) \(why)",
              subject: options.dir + "/" + ProjectFile.name, hint: "use a folder under /var/lib/drover on that host, or \(machine.allowHint)"))
        }
      }
      for (field, path) in settings.folders {
        let located = path.hasPrefix("/") ? path : absoluteDir + "/" + path
        if let why = policy.resolvedFolderProblem(located, realPath: SafeFiles.realPath) {
          problems.append(
            .error(
              "project.path", "\(field) '\(Terminal.escaped(path))' in \(ProjectFile.name) \(why)", subject: options.dir + "/" + ProjectFile.name,
              hint: "use a folder inside the project or under /var/lib/drover, or \(machine.allowHint)"))
        }
      }
    }
    if problems.hasErrors { throw CommandFailure(problems, sources: sources) }
    self.settings = settings
    // A shared state database's transport and password are checked here, once per command:
    // its warnings said once, a refused password file an error like any other.
    if case .postgres(let url, _) = settings?.state {
      let warnings = StateCredentials.trust(url: url, machine: machine).1
      if !warnings.isEmpty { Report.diagnostics(warnings, sources: [], format: format, noColor: options.noColor) }
      _ = try StateCredentials.password(url: url, machine: machine, environment: ProcessInfo.processInfo.environment)
    }
  }

  var dir: String { options.dir }
  var noColor: Bool { options.noColor }
  var connectTimeout: Double { options.connectTimeout }
  var callTimeout: Double { options.callTimeout }
  var color: Bool { Output.useColor(disabled: noColor) }
  /// The project folder as an absolute path (what specs may name host files in).
  var absoluteDir: String { ProjectFolder.absolute(dir) }
  var poolsPath: String { dir + "/pools" }
  var imagesPath: String { dir + "/images" }
  /// drover.yaml's host entries.
  var hosts: [HostEntry] { settings?.hosts ?? [] }
  /// How each host is reached: drover.yaml's entries with this machine's keys and rules.
  var hostDirectory: HostDirectory { HostDirectory(entries: hosts, machine: machine) }
  /// The project name: --project, $DROVER_PROJECT, then drover.yaml; "" when none names it
  /// (then every command that reads or changes hosts refuses: `requireName`).
  var projectName: String { options.projectFlag ?? ProcessInfo.processInfo.environment["DROVER_PROJECT"] ?? settings?.project ?? "" }
  /// The project's key, locks, rollout journal and remembered hosts (never the source of truth:
  /// libvirt is). Machine-wide by default, so two checkouts of one project share them; a
  /// relative `state.dir` is inside the project folder. A project with no name (only `bake`
  /// runs then) keeps its caches in `.drover/` of the folder.
  var stateDirectory: String {
    if case .local(let configured?) = settings?.state { return configured.hasPrefix("/") ? configured : dir + "/" + configured }
    return projectName.isEmpty ? dir + "/.drover" : ProjectSettings.defaultStateDirectory(project: projectName)
  }
  /// A path from drover.yaml: relative ones are inside the project folder.
  func path(_ value: String?) -> String? {
    guard let value else { return nil }
    return value.hasPrefix("/") ? value : dir + "/" + value
  }

  /// The keepalive every connection of a command that changes nodes gets (nil: off).
  var keepAlive: HostKeepAlive? { options.keepAlive(byDefault: true) }
  func keepAlive(byDefault: Bool) -> HostKeepAlive? { options.keepAlive(byDefault: byDefault) }

  /// Refuses to go on without a project name, with the fix.
  func requireName() throws(Diagnostic) {
    guard projectName.isEmpty else { return }
    let missing = !FileManager.default.fileExists(atPath: dir + "/" + ProjectFile.name)
    throw .error(
      "project.unnamed", missing ? "\(dir)/\(ProjectFile.name) does not exist, so no project is named" : "no project is named",
      subject: dir, hint: "create \(ProjectFile.name) with a line 'project: NAME' (it decides which nodes are this project's)")
  }

  /// The project's state for one run (#34: a value passed down, never a process global): the
  /// state folder, or the database drover.yaml names, connected on first use (a lock, a
  /// journal), never by commands that need neither; the password only from Drover's own
  /// variable or file (#40: never PGPASSWORD, which a machine may hold for another database).
  func stateStore() throws -> StateStore {
    guard case .postgres(let url, let configured) = settings?.state else { return .local }
    let project = projectName, timeout = connectTimeout, calls = callTimeout, lease = configured ?? PostgresState.defaultLease
    let trust = StateCredentials.trust(url: url, machine: machine).0
    let password = try StateCredentials.password(url: url, machine: machine, environment: ProcessInfo.processInfo.environment)
    return StateStore {
      try PostgresState.connect(url: url, project: project, password: password, trust: trust, timeout: timeout, callTimeout: calls, lease: lease)
    }
  }
}

/// Where golden images, overlays and console logs live for this command: the flags, then the
/// environment, then drover.yaml, then the defaults.
struct ImagePaths {
  let options: ImageOptions
  let project: LoadedProject

  private var environment: [String: String] { ProcessInfo.processInfo.environment }
  var imageDir: String {
    options.imageDirFlag ?? environment["DROVER_IMAGE_DIR"] ?? project.path(project.settings?.imageDir) ?? "/var/lib/drover/images"
  }
  var imagePool: String { options.imagePoolFlag ?? environment["DROVER_IMAGE_POOL"] ?? project.settings?.imagePool ?? "drover-images" }
  var consoleDir: String {
    options.consoleDirFlag ?? environment["DROVER_CONSOLE_DIR"] ?? project.path(project.settings?.consoleDir) ?? "/var/lib/drover/console"
  }
  var catalogue: ImageCatalogue { ImageCatalogue(directory: imageDir) }

  func nodeImages() -> NodeImages {
    NodeImages(
      catalogue: catalogue, poolName: imagePool, consoleDirectory: consoleDir, machine: project.machine,
      hostPaths: HostPathPolicy(project: project.absoluteDir, allowed: project.machine.allowedRoots),
      hostDirectories: Dictionary(project.hosts.compactMap { entry in entry.imageDir.map { (entry.uri, $0) } }, uniquingKeysWith: { a, _ in a }))
  }
}

extension ImageOptions {
  /// The paths these flags give for `project`.
  func resolved(_ project: LoadedProject) -> ImagePaths { ImagePaths(options: self, project: project) }
}

/// A project folder as an absolute path, links resolved when it exists.
enum ProjectFolder {
  static func absolute(_ dir: String) -> String {
    SafeFiles.realPath(dir) ?? (dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir)
  }
}
