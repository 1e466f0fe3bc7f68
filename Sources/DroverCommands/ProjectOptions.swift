import ArgumentParser
import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPostgres
import DroverPlan
import DroverRollout
import DroverSpec
import Foundation
import Synchronization

/// Where the project lives and how to reach its hosts; shared by every command that plans.
struct ProjectOptions: ParsableArguments {
  @Option(name: [.customShort("C"), .long], help: "The project folder holding pools/ and images/.")
  var dir: String = "."

  @Option(
    name: .customLong("project"),
    help: "Overrides the project named in drover.yaml (or $DROVER_PROJECT): the name recorded in every node Drover creates; nodes of other projects are never touched.")
  var projectFlag: String?

  @Option(help: "Seconds to wait for a libvirt host to answer before reporting it unreachable.")
  var connectTimeout: Double = 10

  @Option(help: "Seconds each operation on a host (a read of its domains, a node's create, update or delete) may take before the host is reported as not answering.")
  var callTimeout: Double = 30

  @Option(help: "Seconds without traffic after which Drover pings a host (libvirt's keepalive, as virsh -k); 0 turns it off. Default: 5 for commands that change nodes (apply, heal, watch, rollout, host), off for plan, drift and status (their reads are bounded by --call-timeout).")
  var keepaliveInterval: Int32?

  @Option(help: "Unanswered pings after which a host is given up and every call waiting on it fails (as virsh -K; default 3).")
  var keepaliveCount: UInt32?

  @Flag(help: "Never colour the output.")
  var noColor = false

  func validate() throws {
    guard (keepaliveInterval ?? 0) >= 0, (keepaliveCount ?? 1) >= 1 else {
      throw ValidationError("--keepalive-interval must be 0 or more seconds and --keepalive-count at least 1")
    }
    let override = projectFlag ?? ProcessInfo.processInfo.environment["DROVER_PROJECT"]
    if let override, !ProjectName.isValid(override) {
      throw ValidationError("--project (or $DROVER_PROJECT) must be 1–64 letters, digits, '_' or '-', not '\(override)'")
    }
    // drover.yaml is read once, here, so every option group (images, state) sees the same file;
    // its problems are located diagnostics like any spec's.
    try CurrentMachine.load(format: .human, noColor: noColor)
    var (settings, problems, sources) = ProjectFileLoader.read(dir: dir)
    if let settings {
      // drover.yaml comes with the project: its folders stay in the project, in Drover's own
      // folders under /var/lib/drover (images, consoles, this project's state), or under a root
      // this machine allows — checked on the real path, so a committed link is seen through.
      let defaults = ["/var/lib/drover/images", "/var/lib/drover/console", ProjectSettings.defaultStateDirectory(project: projectFlag ?? settings.project)]
      let policy = HostPathPolicy(project: absoluteDir, allowed: CurrentMachine.settings.allowedRoots + defaults)
      // A host entry's image folder is on that host: the same roots, read as text.
      for entry in settings.hosts {
        if let folder = entry.imageDir, let why = HostPathPolicy(project: nil, allowed: CurrentMachine.settings.allowedRoots + ["/var/lib/drover"]).problem(folder) {
          problems.append(
            .error(
              "project.path", "host \(entry.name): image_dir '\(Terminal.escaped(folder))' in \(ProjectFile.name) \(why)", subject: dir + "/" + ProjectFile.name,
              hint: "use a folder under /var/lib/drover on that host, or \(CurrentMachine.settings.allowHint)"))
        }
      }
      for (field, path) in settings.folders {
        let located = path.hasPrefix("/") ? path : absoluteDir + "/" + path
        if let why = policy.resolvedFolderProblem(located, realPath: SafeFiles.realPath) {
          problems.append(
            .error(
              "project.path", "\(field) '\(Terminal.escaped(path))' in \(ProjectFile.name) \(why)", subject: dir + "/" + ProjectFile.name,
              hint: "use a folder inside the project or under /var/lib/drover, or \(CurrentMachine.settings.allowHint)"))
        }
      }
    }
    if problems.hasErrors { throw CommandFailure(problems, sources: sources) }
    CurrentProject.set(settings, dir: dir)
    // A shared state database's transport and password are checked once, here: its warnings
    // said once per command, a refused password file an error like any other.
    if case .postgres(let url) = settings?.state {
      let warnings = StateCredentials.trust(url: url, machine: CurrentMachine.settings).1
      if !warnings.isEmpty { Report.diagnostics(warnings, sources: [], format: .human, noColor: noColor) }
      _ = try StateCredentials.password(url: url, machine: CurrentMachine.settings, environment: ProcessInfo.processInfo.environment)
    }
  }

  /// The project's state for one run (#34: a value passed down, never a process global): the
  /// state folder, or the database drover.yaml names, connected on first use (a lock, a
  /// journal), never by commands that need neither; the password only from Drover's own
  /// variable or file (#40: never PGPASSWORD, which a machine may hold for another database).
  func stateStore() throws -> StateStore {
    guard case .postgres(let url) = settings?.state else { return .local }
    let project = projectName, timeout = connectTimeout, calls = callTimeout
    let trust = StateCredentials.trust(url: url, machine: CurrentMachine.settings).0
    let password = try StateCredentials.password(url: url, machine: CurrentMachine.settings, environment: ProcessInfo.processInfo.environment)
    return StateStore { try PostgresState.connect(url: url, project: project, password: password, trust: trust, timeout: timeout, callTimeout: calls) }
  }

  /// The project folder as an absolute path (what specs may name host files in).
  var absoluteDir: String { CurrentProject.absolute(dir) }


  var poolsPath: String { dir + "/pools" }
  var imagesPath: String { dir + "/images" }
  /// What drover.yaml says (nil when the project has none).
  var settings: ProjectSettings? { CurrentProject.settings }
  /// The project name: --project, $DROVER_PROJECT, then drover.yaml; "" when none names it
  /// (then every command that reads or changes hosts refuses: `requireName`).
  var projectName: String { projectFlag ?? ProcessInfo.processInfo.environment["DROVER_PROJECT"] ?? settings?.project ?? "" }
  /// The project's key, locks, rollout journal and remembered hosts (never the source of truth:
  /// libvirt is). Machine-wide by default, so two checkouts of one project share them; a
  /// relative `state.dir` is inside the project folder. A project with no name (only `bake`
  /// runs then) keeps its caches in `.drover/` of the folder.
  var stateDirectory: String {
    if case .local(let configured?) = settings?.state { return configured.hasPrefix("/") ? configured : dir + "/" + configured }
    return projectName.isEmpty ? dir + "/.drover" : ProjectSettings.defaultStateDirectory(project: projectName)
  }

  /// Refuses to go on without a project name, with the fix.
  func requireName() throws(Diagnostic) {
    guard projectName.isEmpty else { return }
    let missing = !FileManager.default.fileExists(atPath: dir + "/" + ProjectFile.name)
    throw .error(
      "project.unnamed", missing ? "\(dir)/\(ProjectFile.name) does not exist, so no project is named" : "no project is named",
      subject: dir, hint: "create \(ProjectFile.name) with a line 'project: NAME' (it decides which nodes are this project's)")
  }
  var color: Bool { Output.useColor(disabled: noColor) }
  /// The keepalive every connection of a command that changes nodes gets, local ones too (nil: off).
  var keepAlive: HostKeepAlive? { keepAlive(byDefault: true) }

  /// The keepalive asked for, or by default: on where a command changes nodes (its waits can be
  /// long: transfers, boots), off for read-only commands, whose every read is bounded by
  /// `--call-timeout` anyway — libvirt's event loop, which keepalive needs, hands every reply to
  /// one more thread and cost `plan` 1.3–2× at 1,000 nodes.
  func keepAlive(byDefault: Bool) -> HostKeepAlive? {
    let asked = keepaliveInterval != nil || keepaliveCount != nil
    let interval = keepaliveInterval ?? HostKeepAlive.standard.interval
    guard asked || byDefault, interval > 0 else { return nil }
    return HostKeepAlive(interval: interval, count: keepaliveCount ?? HostKeepAlive.standard.count)
  }
}

/// Specs loaded and hosts connected: what plan, apply, status and drift start from.
struct ProjectContext {
  var specs: SpecSet
  var sources: [SpecSource]
  var backends: [String: LibvirtHostBackend]
  /// Hosts that could not be connected, with the reason.
  var unreachable: [String: String]
  /// Hosts the pool files name.
  var declaredHosts: Set<String> = []
  /// The project and its record key (nil until known), shared with every backend.
  var keyring: Keyring
  /// Where this run's locks and journals are (a fresh session per load: a `watch` pass).
  var state: StateStore

  /// Loads and validates the specs (reporting and failing on any error), then connects to every
  /// host they name, in parallel, each within the connect timeout.
  /// - Parameter imagePool: Drover's image storage pool, whose overlays are observed with the domains.
  /// - Parameter keepAliveByDefault: whether the connections get keepalive unless the options
  ///   say otherwise (false for the read-only commands: plan, drift, status).
  static func load(
    _ options: ProjectOptions, readOnly: Bool = false, imagePool: String? = nil, keepAliveByDefault: Bool = true
  ) throws
    -> ProjectContext
  {
    // Nothing silent: a mistyped -C or a missing pools/ is an error, never "No changes".
    var isDirectory: ObjCBool = false
    defer { PhaseTimings.mark("key") }
    guard FileManager.default.fileExists(atPath: options.dir, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw Diagnostic.error("project.missing", "the project folder \(options.dir) does not exist", subject: options.dir, hint: "pass -C with the folder that holds pools/ and images/")
    }
    try options.requireName()
    guard FileManager.default.fileExists(atPath: options.poolsPath) else {
      throw Diagnostic.error("project.no-pools", "\(options.poolsPath) does not exist", subject: options.dir, hint: "create it (an empty pools/ means the project has no pools)")
    }
    let (sources, readProblems) = SpecFiles.read([options.poolsPath, options.imagesPath].filter {
      FileManager.default.fileExists(atPath: $0)
    })
    let (specs, problems) = SpecLoader.load(sources, machine: CurrentMachine.settings, projectFolder: options.absoluteDir, hosts: CurrentProject.settings?.hosts ?? [])
    let diagnostics = readProblems + problems
    if diagnostics.hasErrors { throw CommandFailure(diagnostics, sources: sources) }
    PhaseTimings.mark("specs")
    let declared = Set(specs.pools.flatMap(\.spec.hosts))
    let remembered: Set<String>
    switch KnownHostsFile.read(stateDirectory: options.stateDirectory, project: options.projectName, isAcceptable: RememberedURI.isAcceptable) {
    case .success(let hosts): remembered = hosts
    case .failure(let problem): throw CommandFailure([problem])
    }
    let key = try ProjectKeyStore.load(project: options.projectName, stateDirectory: options.stateDirectory)
    let keyring = Keyring(project: options.projectName, key: key)
    let uris = ProjectHosts.toRead(declared: declared, remembered: remembered)
    let connected = Connector.connect(
      uris, keyring: keyring, readOnly: readOnly, timeout: options.connectTimeout, imagePool: imagePool, callTimeout: options.callTimeout,
      keepAlive: options.keepAlive(byDefault: keepAliveByDefault))
    PhaseTimings.mark("connect")
    return ProjectContext(
      specs: specs, sources: sources, backends: connected.backends, unreachable: connected.unreachable, declaredHosts: declared,
      keyring: keyring, state: try options.stateStore())
  }

  /// Writes `.drover/hosts.<project>` for what `observed` shows (apply calls it before it changes anything,
  /// so a host is remembered before the project has nodes there). The file is re-read under its
  /// lock, so what this process read at start-up is not what it writes back. `observed` is the
  /// world as read (`observeAsRead`), aliases included.
  func rememberHosts(_ observed: ObservedWorld, project: String, stateDirectory: String) throws(Diagnostic) {
    let declared = declaredHosts
    try KnownHostsFile.update(stateDirectory: stateDirectory, project: project, isAcceptable: RememberedURI.isAcceptable) { now in
      ProjectHosts.toRemember(declared: declared, remembered: now, observed: observed, project: project)
    }
  }

  /// The world to plan and report with: every host read, less remembered ones that turn out to
  /// be a declared host under another URI (see `ProjectHosts.aliases`).
  func observe(detailed: Bool = false) -> ObservedWorld {
    ProjectHosts.withoutAliases(observeAsRead(detailed: detailed), declared: declaredHosts)
  }

  func observeAsRead(detailed: Bool = false) -> ObservedWorld {
    WorldObserver.observe(backends.keys.sorted().compactMap { backends[$0] }, unreachable: unreachable, detailed: detailed)
  }

  /// Each project host's overcommit ratios, by URI (drover.yaml's host entries).
  static var hostLimits: [String: HostLimits] {
    Dictionary((CurrentProject.settings?.hosts ?? []).map { ($0.uri, $0.limits) }, uniquingKeysWith: { a, _ in a })
  }

  /// What plan plans with: the options apply's job plans with (`ApplyJob.planOptions`).
  func planOptions(_ project: ProjectOptions, targeting: TargetingOptions.Selection, images: ImageOptions) throws -> PlanOptions {
    let request = ApplyRequest(
      targets: targeting.targets, excludes: targeting.excludes, replace: targeting.replace, prune: targeting.prune, skipUnreachable: targeting.skipUnreachable)
    return try ApplyJob.planOptions(request, in: ApplyWiring(project: project, images: images, json: false).runContext(self, approver: AutoApprove()))
  }
}

/// Which URIs `<state>/hosts.<project>` may hold: exactly the rule pool files obey (no ext
/// transport, no parameter that runs a program or decides trust, unless it is a host entry of
/// the machine's configuration): a line in a file must never be a way to run something.
enum RememberedURI {
  static func isAcceptable(_ uri: String) -> Bool {
    uri.count <= 1024 && SpecUnits.isLibvirtURI(uri)
      && (SpecUnits.unsafeURIReason(uri) == nil || CurrentMachine.settings.hostURIs.contains(uri))
  }
}

/// Opens connections to many hosts at once.
enum Connector {
  static func connect(
    _ uris: [String], keyring: Keyring, readOnly: Bool, timeout: Double, imagePool: String? = nil, callTimeout: Double = 30,
    keepAlive: HostKeepAlive? = .standard
  ) -> (
    backends: [String: LibvirtHostBackend], unreachable: [String: String]
  ) {
    let results = Mutex<(backends: [String: LibvirtHostBackend], unreachable: [String: String])>(([:], [:]))
    let directory = HostDirectory(entries: CurrentProject.settings?.hosts ?? [], machine: CurrentMachine.settings)
    // libvirt's event loop (which keepalive needs) is process-wide, and libssh connections
    // crash beside it: with a libssh host in the run, no host gets keepalive (per-call deadlines
    // still bound every wait).
    let keepAlive = uris.contains(where: LibvirtHostBackend.usesLibssh) ? nil : keepAlive
    BlockingFanOut.forEach(uris.count, width: uris.count) { i in
      let uri = uris[i]
      // An unverified transport the machine did not allow is refused before any call; one it
      // allows is said every time.
      if let why = directory.insecureProblem(uri) {
        results.withLock { $0.unreachable[uri] = "refused: \(why)" }
        return
      }
      if HostDirectory.isUnverified(uri) {
        Output.err("warning: host \(uri) is reached without verifying it (insecure: true in the machine's configuration): anyone on the path can act as it")
      }
      do {
        let backend = try LibvirtHostBackend.connect(
          uri, via: directory.connectURI(for: uri), keyring: keyring, readOnly: readOnly, timeout: timeout, imagePool: imagePool,
          callTimeout: callTimeout, keepAlive: keepAlive)
        // A host with its own image folder keeps its consoles there, read back through libvirt.
        backend.consoleOnHost = directory.entry(for: uri)?.imageDir != nil
        results.withLock { $0.backends[uri] = backend }
      } catch {
        let message = (error as? HostError)?.message ?? "\(error)"
        results.withLock { $0.unreachable[uri] = message }
      }
    }
    return results.withLock { $0 }
  }
}

/// Says once, on standard error, that a journal had damaged lines and where they were put.
enum JournalDamage {
  static func report(_ damage: String) {
    Output.err("warning: rollout journal: \(damage); the records before it are intact (a process was killed mid-write, or the file was edited)")
  }
}

/// The project-wide lock (beside the per-pool ones): held to create or import the key, to adopt
/// a node and to prune, so two of those never interleave on one machine.
enum ProjectLock {
  static func acquire(_ project: ProjectOptions, timeout: Double, state: StateStore) throws -> PoolLock {
    try PoolLock.acquire(
      pool: "_project", directory: project.stateDirectory + "/locks", command: CommandLine.arguments.joined(separator: " "), timeout: timeout,
      state: state)
  }
}
