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
  }

  /// The keepalive asked for, or by default: on where a command changes nodes (its waits can be
  /// long: transfers, boots), off for read-only commands, whose every read is bounded by
  /// `--call-timeout` anyway. Drover's own event loop (`Libvirt.EventLoop`) made keepalive cheap
  /// in wall time (plan 1.08×, apply 0.97× at 1,000 nodes), but it still costs plan's client
  /// ~30–40 µs of CPU per node (125 against 86), against a target of 100.
  func keepAlive(byDefault: Bool) -> HostKeepAlive? {
    let asked = keepaliveInterval != nil || keepaliveCount != nil
    let interval = keepaliveInterval ?? HostKeepAlive.standard.interval
    guard asked || byDefault, interval > 0 else { return nil }
    return HostKeepAlive(interval: interval, count: keepaliveCount ?? HostKeepAlive.standard.count)
  }
}

/// Specs loaded and hosts connected: what plan, apply, status and drift start from.
struct ProjectContext {
  /// The project these were loaded for (its options, drover.yaml, the machine's configuration).
  var project: LoadedProject
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
    _ options: LoadedProject, readOnly: Bool = false, imagePool: String? = nil, keepAliveByDefault: Bool = true
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
    let (specs, problems) = SpecLoader.load(
      sources, machine: options.machine, projectFolder: options.absoluteDir, hosts: options.hosts, defaultWindow: options.settings?.window)
    let diagnostics = readProblems + problems
    if diagnostics.hasErrors { throw CommandFailure(diagnostics, sources: sources) }
    PhaseTimings.mark("specs")
    let declared = Set(specs.pools.flatMap(\.spec.hosts))
    let remembered: Set<String>
    let machine = options.machine
    switch KnownHostsFile.read(stateDirectory: options.stateDirectory, project: options.projectName, isAcceptable: { RememberedURI.isAcceptable($0, machine: machine) }) {
    case .success(let hosts): remembered = hosts
    case .failure(let problem): throw CommandFailure([problem])
    }
    let key = try ProjectKeyStore.load(project: options.projectName, stateDirectory: options.stateDirectory)
    let keyring = Keyring(project: options.projectName, key: key)
    let uris = ProjectHosts.toRead(declared: declared, remembered: remembered)
    let connected = Connector.connect(
      uris, directory: options.hostDirectory, keyring: keyring, readOnly: readOnly, timeout: options.connectTimeout, imagePool: imagePool,
      callTimeout: options.callTimeout, keepAlive: options.keepAlive(byDefault: keepAliveByDefault))
    PhaseTimings.mark("connect")
    return ProjectContext(
      project: options, specs: specs, sources: sources, backends: connected.backends, unreachable: connected.unreachable, declaredHosts: declared,
      keyring: keyring, state: try options.stateStore())
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
  var hostLimits: [String: HostLimits] {
    Dictionary(project.hosts.map { ($0.uri, $0.limits) }, uniquingKeysWith: { a, _ in a })
  }

  /// What plan plans with: the options apply's job plans with (`ApplyJob.planOptions`).
  func planOptions(_ project: LoadedProject, targeting: TargetingOptions.Selection, images: ImagePaths) throws -> PlanOptions {
    let request = ApplyRequest(
      targets: targeting.targets, excludes: targeting.excludes, replace: targeting.replace, prune: targeting.prune, skipUnreachable: targeting.skipUnreachable)
    return try ApplyJob.planOptions(request, in: ApplyWiring(project: project, images: images, json: false).runContext(self, approver: AutoApprove()))
  }
}

/// Which URIs `<state>/hosts.<project>` may hold: exactly the rule pool files obey (no ext
/// transport, no parameter that runs a program or decides trust, unless it is a host entry of
/// the machine's configuration): a line in a file must never be a way to run something.
enum RememberedURI {
  static func isAcceptable(_ uri: String, machine: MachineSettings) -> Bool {
    uri.count <= 1024 && SpecUnits.isLibvirtURI(uri)
      && (SpecUnits.unsafeURIReason(uri) == nil || machine.hostURIs.contains(uri))
  }
}

/// Opens connections to many hosts at once.
enum Connector {
  static func connect(
    _ uris: [String], directory: HostDirectory, keyring: Keyring, readOnly: Bool, timeout: Double, imagePool: String? = nil, callTimeout: Double = 30,
    keepAlive: HostKeepAlive? = .standard
  ) -> (
    backends: [String: LibvirtHostBackend], unreachable: [String: String]
  ) {
    let results = Mutex<(backends: [String: LibvirtHostBackend], unreachable: [String: String])>(([:], [:]))
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
  static func acquire(_ project: LoadedProject, timeout: Double, state: StateStore) throws -> PoolLock {
    try PoolLock.acquire(
      pool: "_project", directory: project.stateDirectory + "/locks", command: CommandLine.arguments.joined(separator: " "), timeout: timeout,
      state: state)
  }
}
