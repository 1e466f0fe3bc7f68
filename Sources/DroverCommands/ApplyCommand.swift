import ArgumentParser
import DroverBake
import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverPrometheus
import DroverRollout
import Foundation
import Synchronization

/// `drover apply`: makes the hosts match the specs, or applies a saved plan exactly.
struct ApplyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "apply",
    abstract: "Apply the changes that make the hosts match the specs.",
    discussion: """
      Without a plan file: plans, shows the plan and asks for 'yes' (or --auto-approve). With a \
      saved plan: re-observes the hosts and refuses, naming what changed, if the world or the \
      specs differ from when the plan was saved; otherwise applies exactly that plan. Each pool \
      is locked for the duration; Ctrl-C lets the steps in flight finish and stops.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var targeting: TargetingOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "A plan saved with 'drover plan --out'.", completion: .file(extensions: ["plan"]))
  var planFile: String?

  @Flag(help: "Apply without asking (for CI).")
  var autoApprove = false

  @Flag(help: "Print one JSON event per line instead of text.")
  var json = false

  @Option(help: "How long to wait for another apply's lock on a pool, e.g. 30s or 5m.")
  var lockTimeout: String = "0s"

  @Option(help: "Write the rollouts' analysis-gate measurements as Prometheus textfile metrics here (for node_exporter's textfile collector).")
  var textfile: String?

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else {
      throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 5m")
    }
    if planFile != nil && (!targeting.targets.isEmpty || !targeting.excludes.isEmpty || !targeting.replace.isEmpty || targeting.prune) {
      throw ValidationError("--target, --exclude, --replace and --prune cannot be combined with a saved plan (it has its own)")
    }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    // A saved plan brings its own targeting (validate refuses flags beside it).
    let saved: Plan?
    do { saved = try planFile.map(PlanFile.read) } catch { throw CommandFailure(Diagnostic.list(of: error, code: "plan.file")) }
    let selection = targeting.selection
    let request = ApplyRequest(
      kind: .apply, saved: saved, savedFrom: planFile, targets: selection.targets, excludes: selection.excludes, replace: selection.replace,
      prune: selection.prune, skipUnreachable: selection.skipUnreachable, lockTimeout: DurationArgument.seconds(lockTimeout) ?? 0)
    var wiring = ApplyWiring(project: project, images: images, json: json)
    wiring.textfile = textfile
    try wiring.run(request, approver: autoApprove ? AutoApprove() : TerminalApprover())
  }
}

/// What every apply-shaped command (`apply`, `rollout resume|abort`, `host drain`, a heal
/// pass's replacements) shares at the edge: the run context made from the options, the
/// executor's adapters (images, consoles, drains, progress lines) and the rendering of the
/// outcome. The job itself — locks, plan, approval, key, execution — is `ApplyJob`'s.
struct ApplyWiring {
  var project: LoadedProject
  var images: ImagePaths
  var json: Bool
  /// `drover watch` installs one for all its passes.
  var interrupt: InterruptFlag? = nil
  /// `apply --textfile`: where the rollouts' gate measurements go as metrics (#43).
  var textfile: String? = nil

  /// Loads the project, runs `request` through `ApplyJob` and renders what happened; a refusal
  /// or an outcome with anything not done is thrown to the edge.
  func run(_ request: ApplyRequest, approver: any Approver) throws {
    PhaseTimings.start()
    defer { PhaseTimings.report() }
    let loaded = try ProjectContext.load(project, imagePool: images.imagePool)
    let context = runContext(loaded, approver: approver)
    let result: ApplyJobResult
    do {
      result = try ApplyJob.run(request, in: context) { context throws(Diagnostic) in try engine(context, loaded: loaded) }
    } catch {
      if let plan = error.incompletePlan, !json { Output.out(PlanView.human(plan, color: project.color, complete: false)) }
      throw CommandFailure(error.diagnostics, sources: error.inSpecs ? loaded.sources : [], trailer: error.saysNoActionTaken ? ["No action was taken."] : [])
    }
    switch result {
    case .noChanges:
      if json { ApplyEvents.summary(added: 0, changed: 0, destroyed: 0, failed: 0) }
    case .declined:
      throw CommandFailure(
        [.error("apply.cancelled", "the plan was not approved (only 'yes' is)", hint: "run drover apply again and answer yes, or pass --auto-approve")],
        trailer: ["Apply cancelled."])
    case .ran(_, let outcome):
      if let textfile {
        try PrometheusTextfile.write(AnalysisMetrics.render(outcome.rollouts.map(\.state), at: Date()), to: textfile)
      }
      // Anything planned and not done is a non-zero exit, its failures said at the edge.
      let status = render(outcome, kind: request.kind)
      if status != 0 { throw CommandFailure(outcome.diagnostics, status: status) }
    }
  }

  /// The run context of this command: the loaded project, the options' state folder, the
  /// system clock, and the notices said as they happen (human or JSON).
  func runContext(_ loaded: ProjectContext, approver: any Approver) -> RunContext {
    let json = self.json, color = project.color, noColor = project.noColor, images = self.images
    return RunContext(
      project: project.projectName, stateDirectory: project.stateDirectory, pools: loaded.specs.poolSpecs, backends: loaded.backends.mapValues { $0 },
      unreachable: loaded.unreachable, declaredHosts: loaded.declaredHosts, keyring: loaded.keyring, state: loaded.state, imageDigests: images.catalogue.digestsByReference,
      hostLimits: loaded.hostLimits, isRememberable: { [machine = project.machine] in RememberedURI.isAcceptable($0, machine: machine) }, approver: approver,
      lockCommand: CommandLine.arguments.joined(separator: " "),
      say: { notice in
        switch notice {
        case .warnings(let warnings): if !json { Report.diagnostics(warnings, sources: loaded.sources, format: .human, noColor: noColor) }
        case .planned(let plan, let observed):
          guard !json else { return }
          Output.out(PlanView.human(plan, color: color))
          if let transfers = TransferView.human(TransferView.transfers(plan, observed: observed, images: images)) { Output.out("\n" + transfers) }
        case .keyCreated(let key, let path):
          if !json { Output.err("Created the key of project \(loaded.keyring.project) (id \(key.id)) in \(path); other machines and CI need it: drover key export") }
        case .journalDamaged(let damage): JournalDamage.report(damage)
        case .phase(let name): PhaseTimings.mark(name)
        }
      })
  }

  /// How Drover reaches the project's nodes over SSH: seeded nodes get Drover's user with the
  /// project's SSH key, and its files are written before any node is made (a node whose seed
  /// names a key Drover cannot use is unreachable). Also with no seeded pool left while pins
  /// remain: the nodes being deleted take theirs along. Nil: no key, or nothing needs it.
  static func nodeSSH(_ project: LoadedProject, keyring: Keyring, pools: [PoolSpec]) throws(Diagnostic) -> NodeSSHAccess? {
    let pinsFile = NodeSSHAccess.knownHostsPath(stateDirectory: project.stateDirectory, project: project.projectName)
    guard let key = keyring.key, pools.contains(where: \.seeded) || FileManager.default.fileExists(atPath: pinsFile) else {
      return nil
    }
    return try NodeSSHAccess.prepare(stateDirectory: project.stateDirectory, project: project.projectName, identity: SSHIdentity(deriving: key))
  }

  /// The executor with this machine's adapters: images put on hosts, consoles where this
  /// machine keeps them, drains with the pool folder's paths, progress as lines or JSON events.
  func engine(_ context: RunContext, loaded: ProjectContext) throws(Diagnostic) -> ApplyEngine {
    let interrupt = self.interrupt ?? InterruptFlag.install()
    let started = context.clock.now()
    let json = self.json
    let nodeImages = images.nodeImages()
    let consoleDir = images.consoleDir
    let poolFolders = Dictionary(loaded.specs.pools.map { ($0.spec.name, ($0.file as NSString).deletingLastPathComponent) }) { a, _ in a }
    let hostPaths = HostPathPolicy(project: project.absoluteDir, allowed: project.machine.allowedRoots)
    let nodeSSH = try Self.nodeSSH(project, keyring: context.keyring, pools: context.pools)
    var engine = ApplyEngine(
      pools: context.pools, backends: context.backends, project: context.project,
      journalDirectory: context.stateDirectory + "/journal", keyring: context.keyring, state: context.state,
      hooks: ApplyEngine.Hooks(
        prepare: { node, backend in
          // Backends here are libvirt's (image hosts); a lane is one too.
          guard let host = backend as? any ImageHost else { return node }
          return try nodeImages.prepare(node, host: host)
        },
        consoleLog: { node in "\(consoleDir)/\(node).log" },
        drainer: { pool in Drainers.make(pool.drain, specFolder: poolFolders[pool.name] ?? "", hostPaths: hostPaths) },
        shouldStop: { interrupt.isSet },
        onStep: { event in ApplyProgress.print(event, json: json, since: started) },
        onHealthy: { action in
          if !json { Output.out("[\(ApplyProgress.clock(Date().timeIntervalSince(started)))] \(action.node) on \(action.host): healthy") }
        },
        onRollout: { pool, event in
          if json {
            ApplyEvents.rollout(pool: pool, event)
          } else {
            // A hook's output, indented under its step (made safe for the terminal); one block
            // at a time, as the nodes of a wave report at once.
            var block = "[\(ApplyProgress.clock(Date().timeIntervalSince(started)))] " + Terminal.printable(event.message)
            for line in (event.output ?? "").split(separator: "\n", omittingEmptySubsequences: false) where event.output != nil {
              block += "\n            | " + Terminal.printable(String(line))
            }
            ApplyProgress.lock.withLock { Output.out(block) }
          }
        }, nodeSSH: nodeSSH, metrics: try Self.metrics(project)))
    // Windows are decided by the run's clock (a test's or a heal pass's).
    let clock = context.clock
    engine.hooks.now = { clock.now().timeIntervalSince1970 }
    engine.hooks.hostLimits = context.hostLimits
    return engine
  }

  /// The project's Prometheus (`analysis.prometheus`), for analysis gates; nil: none named.
  static func metrics(_ project: LoadedProject) throws(Diagnostic) -> (any MetricsQuerying)? {
    guard let url = project.settings?.prometheus else { return nil }
    // An https server is trusted through the CA this machine's configuration names for it.
    do {
      return try PrometheusClient(url: url, caFile: PrometheusClient.server(of: url).flatMap { project.machine.metricsServers[$0] })
    } catch {
      throw Diagnostic.error("analysis.url", "analysis.prometheus \(Terminal.escaped(url)) cannot be used: \(error)", subject: "drover.yaml")
    }
  }

  /// Renders what a run did (its verdict and the rollouts that stopped; its failures are the
  /// caller's to say) and returns its exit status.
  func render(_ outcome: ApplyOutcome, kind: ApplyJobKind) -> Int32 {
    let failures = outcome.diagnostics
    if json {
      ApplyEvents.summary(
        added: outcome.added, changed: outcome.changed, destroyed: outcome.destroyed, failed: failures.count, skipped: outcome.executed.skipped.count,
        interrupted: outcome.interrupted || outcome.executed.interrupted, exitStatus: outcome.exitStatus, rollouts: outcome.rollouts,
        event: kind.summaryEvent)
    }
    let status = outcome.exitStatus
    if !json {
      let verb = kind.verb
      let verdict: String
      switch status {
      case 0: verdict = "\(verb) complete!"
      case 130: verdict = "\(verb) interrupted."
      case 3: verdict = "\(verb) stopped: a rollout did not complete."
      default: verdict = "\(verb) failed: not every planned action was done."
      }
      Output.out("\n\(verdict) Nodes: \(outcome.added) added, \(outcome.changed) changed, \(outcome.destroyed) destroyed.")
      if status != 0 { Output.out("Run 'drover plan' to see what remains.") }
    }
    for rollout in outcome.rollouts where rollout.state.status != .completed {
      for line in rollout.summary { Output.err(line) }
    }
    return status
  }
}

/// Asks the person at the terminal, as Terraform does: only 'yes' approves. With no terminal
/// nobody can be asked, and nothing is done.
struct TerminalApprover: Approver {
  func approve(_ plan: Plan) -> Approval {
    guard isatty(STDIN_FILENO) != 0 else {
      return .cannotAsk(
        .error("apply.approval", "standard input is not a terminal, so apply cannot ask for approval", hint: "pass --auto-approve, or apply a saved plan"))
    }
    Output.out("\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: ", terminator: "")
    return readLine()?.trimmingCharacters(in: .whitespaces) == "yes" ? .approved : .declined
  }
}

/// Prints one apply event as a timestamped line or a JSON object.
enum ApplyProgress {
  static let lock = NSLock()
  /// When each action in flight started (under `lock`), for its duration.
  nonisolated(unsafe) static var begun: [String: Date] = [:]

  static func print(_ event: ApplyEvent, json: Bool, since start: Date) {
    let a = event.action
    lock.lock()
    defer { lock.unlock() }
    let key = "\(a.kind.rawValue) \(a.node) \(a.host)"
    if event.status == .started { begun[key] = event.time }
    let seconds = event.status == .started ? nil : begun.removeValue(forKey: key).map { event.time.timeIntervalSince($0) }
    if json {
      ApplyEvents.action(event, seconds: seconds)
      return
    }
    let t = clock(event.time.timeIntervalSince(start))
    let verb: String
    switch (a.kind, event.status) {
    case (_, .started): verb = progressVerb(a.kind, done: false)
    case (_, .done): verb = progressVerb(a.kind, done: true)
    case (_, .failed): verb = "FAILED: \(event.message ?? "")"
    case (_, .skipped): verb = "skipped: \(event.message ?? "")"
    }
    Output.out("[\(t)] \(a.node) on \(a.host): \(verb)")
  }

  /// `String(format: "%7.2fs")` without Foundation's formatter: two lines per node of a
  /// 1,000-node apply made it a measurable part of the client's CPU.
  static func clock(_ seconds: Double) -> String {
    let centis = Int((max(0, seconds) * 100).rounded())
    let fraction = centis % 100
    let text = "\(centis / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    return String(repeating: " ", count: max(0, 7 - text.count)) + text + "s"
  }
}

func progressVerb(_ kind: ActionKind, done: Bool) -> String {
  switch kind {
  case .create: return done ? "created" : "creating…"
  case .start: return done ? "started" : "starting…"
  case .update: return done ? "updated" : "updating…"
  case .replace: return done ? "replaced" : "replacing…"
  case .delete: return done ? "destroyed" : "destroying…"
  case .removeOverlay: return done ? "orphaned overlay removed" : "removing orphaned overlay…"
  }
}

/// Parses "30s"/"5m"-style command-line durations.
enum DurationArgument {
  static func seconds(_ text: String) -> Double? {
    for (unit, factor) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where text.hasSuffix(unit) {
      if let v = Double(text.dropLast(unit.count)), v >= 0, v.isFinite { return v * factor }
    }
    return Double(text).flatMap { $0 >= 0 && $0.isFinite ? $0 : nil }
  }
}

/// Set by SIGINT/SIGTERM; polled between steps so a step is never cut in half.
final class InterruptFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var set = false
  private var sources: [DispatchSourceSignal] = []

  var isSet: Bool { lock.withLock { set } }

  static func install() -> InterruptFlag {
    let flag = InterruptFlag()
    for sig in [SIGINT, SIGTERM] {
      signal(sig, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler {
        let first = flag.lock.withLock { () -> Bool in
          defer { flag.set = true }
          return !flag.set
        }
        if first { Output.err("\nInterrupted: finishing the steps in flight, starting no new ones…") }
      }
      source.resume()
      flag.sources.append(source)
    }
    return flag
  }
}
