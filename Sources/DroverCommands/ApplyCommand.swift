import ArgumentParser
import DroverBake
import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
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

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else {
      throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 5m")
    }
    if planFile != nil && (!targeting.targets.isEmpty || !targeting.excludes.isEmpty || !targeting.replace.isEmpty || targeting.prune) {
      throw ValidationError("--target, --exclude, --replace and --prune cannot be combined with a saved plan (it has its own)")
    }
  }

  func run() throws {
    try ApplySession(
      project: project, targeting: targeting.selection, images: images, planFile: planFile, autoApprove: autoApprove, json: json,
      lockTimeout: DurationArgument.seconds(lockTimeout) ?? 0
    ).run()
  }
}

/// One apply, from options to exit status: lock, observe, plan (or load and check a saved plan),
/// approve, run the plan through `ApplyEngine`, render what happened. `drover apply` and
/// `drover rollout resume|abort` both run it (no command calls another through argv).
struct ApplySession {
  var project: ProjectOptions
  var targeting: TargetingOptions.Selection
  var images: ImageOptions
  var planFile: String?
  var autoApprove: Bool
  var json: Bool
  var lockTimeout: Double
  /// `rollout resume|abort`: the rollout in progress is finished as its journal says.
  var resuming = false
  /// `host drain`: the hosts whose nodes move; the plan may hold nothing but those moves (and the
  /// rollouts that carry them), so a drain never applies other pending changes.
  var draining: Set<String> = []
  /// The word the outcome is told with ("Apply", "Heal").
  var verb = "Apply"
  /// `drover watch` installs one for all its passes.
  var interrupt: InterruptFlag? = nil

  var journalDirectory: String { project.stateDirectory + "/journal" }

  func run() throws {
    PhaseTimings.start()
    defer { PhaseTimings.report() }
    let context = try ProjectContext.load(project, format: json ? .json : .human, imagePool: images.imagePool)
    let saved: Plan?
    do { saved = try planFile.map(PlanFile.read) } catch {
      report(error)
      throw ExitCode.failure
    }
    var targeting = self.targeting
    if let saved {
      targeting.targets = saved.targets
      targeting.excludes = saved.excludes
      targeting.replace = saved.forceReplace
      targeting.prune = saved.prune
    }

    // Lock every declared pool in scope (sorted: no lock-order deadlock), then observe under the locks.
    let declared = Set(context.specs.poolSpecs.map(\.name))
    let pools = declared.filter { pool in
      targeting.targets.isEmpty || targeting.targets.contains { poolOfSelector($0, pools: declared) == pool }
    }
    var locks: [PoolLock] = []
    // Pruning deletes pools no file declares, so no per-pool lock covers it: the project lock does.
    var projectLock: PoolLock?
    do {
      if targeting.prune { projectLock = try ProjectLock.acquire(project, timeout: lockTimeout) }
      for pool in pools.sorted() {
        locks.append(
          try PoolLock.acquire(
            pool: pool, directory: project.stateDirectory + "/locks", command: CommandLine.arguments.joined(separator: " "),
            timeout: lockTimeout))
      }
    } catch {
      report(error)
      throw ExitCode.failure
    }
    defer {
      locks.removeAll()
      projectLock = nil
    }

    let asRead = context.observeAsRead()
    PhaseTimings.mark("observe")
    let observed = ProjectHosts.withoutAliases(asRead, declared: context.declaredHosts)
    var options = try context.planOptions(project, targeting: targeting, images: images, resuming: resuming)
    options.draining = draining
    var (current, diagnostics) = makePlan(pools: context.specs.poolSpecs, observed: observed, options: options)
    let others = current.actions.filter { !($0.kind == .replace && draining.contains($0.host) && $0.destination != nil) }
    if !draining.isEmpty, let first = others.first {
      diagnostics.append(
        .error(
          "host.drain-other-changes",
          "pool \(first.pool) has changes besides the drain (\(others.count), first: \(first.kind.rawValue) \(first.node) on \(first.host): \(first.reason)); a drain moves nodes and does nothing else",
          subject: "pool \(first.pool)", hint: "apply them first (drover plan, drover apply), then drain again"))
    }
    do { try context.rememberHosts(asRead, project: project.projectName, stateDirectory: project.stateDirectory) } catch {
      report(error)
      throw ExitCode.failure
    }
    if diagnostics.hasErrors {
      if !json { Output.out(PlanView.human(current, color: project.color, complete: false)) }
      Report.diagnostics(diagnostics, sources: context.sources, format: json ? .json : .human, noColor: project.noColor)
      throw ExitCode.failure
    }
    // Warnings (a pool left out by --skip-unreachable) are said before anything is done.
    if !json && !diagnostics.isEmpty { Report.diagnostics(diagnostics, sources: context.sources, format: .human, noColor: project.noColor) }
    let records = TrustedRecords(observed, project: project.projectName, keyHeld: context.keyring.key != nil)
    if context.keyring.key == nil && current.hasChanges && records.keyed {
      Report.diagnostics(
        [
          .error(
            "records.no-key",
            "the hosts hold records of project \(project.projectName) sealed with key \(records.foreignKeyID ?? "?"), and this machine has no key for it",
            subject: "project \(project.projectName)",
            hint: "import the key (drover key export on a machine that has it, then drover key import here, or set DROVER_PROJECT_KEY); apply changes nothing without it")
        ], sources: [], format: json ? .json : .human, noColor: project.noColor)
      if !json { Output.err("No action was taken.") }
      throw ExitCode.failure
    }
    var plan = current
    if let saved {
      let heals = context.specs.poolSpecs.flatMap { HealEngine.heals(stateDirectory: project.stateDirectory, pool: $0.name, keyring: context.keyring) }
      var stale = StalePlanCheck.check(saved: saved, current: current, heals: heals)
      // What the file says it will run must be what Drover would run now: its actions and
      // rollouts, and the accelerators and programs they run with (a reviewer read those too).
      if !stale.hasErrors,
        saved.actions != current.actions || saved.rollouts != current.rollouts || saved.accelerators != current.accelerators
          || saved.programs != current.programs
      {
        stale.append(
          .error(
            "plan.stale", "the saved plan's actions are not what this Drover would do now (the file was edited, or made by another version)",
            subject: planFile, hint: "run drover plan --out again and review the new plan"))
      }
      if stale.hasErrors {
        Report.diagnostics(stale, sources: [], format: json ? .json : .human, noColor: project.noColor)
        if !json { Output.err("No action was taken.") }
        throw ExitCode.failure
      }
      plan = saved
    } else if !json {
      Output.out(PlanView.human(plan, color: project.color))
      if let transfers = TransferView.human(TransferView.transfers(plan, observed: observed, images: images)) { Output.out("\n" + transfers) }
    }
    guard plan.hasChanges else {
      if json { ApplyEvents.summary(added: 0, changed: 0, destroyed: 0, failed: 0) }
      return
    }
    if saved == nil && !autoApprove {
      guard isatty(STDIN_FILENO) != 0 else {
        Report.diagnostics(
          [.error("apply.approval", "standard input is not a terminal, so apply cannot ask for approval", hint: "pass --auto-approve, or apply a saved plan")],
          sources: [], format: json ? .json : .human, noColor: project.noColor)
        throw ExitCode.failure
      }
      Output.out("\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: ", terminator: "")
      guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
        Output.out("Apply cancelled.")
        throw ExitCode.failure
      }
    }
    // Records are sealed with the project key. It is made here, after approval and right before
    // anything changes, only when the hosts hold no keyed record of the project (a new project,
    // or one whose records an older Drover wrote) and the plan covers the whole project: a key
    // made while some hosts or pools were left out could be a second key of the project.
    if context.keyring.key == nil {
      guard targeting.targets.isEmpty && targeting.excludes.isEmpty else {
        Report.diagnostics(
          [
            .error(
              "records.no-key", "this machine has no key for project \(project.projectName), and a key is only made by an apply of the whole project",
              subject: "project \(project.projectName)", hint: "apply without --target/--exclude once, or import the key (drover key import)")
          ], sources: [], format: json ? .json : .human, noColor: project.noColor)
        throw ExitCode.failure
      }
      do {
        if projectLock == nil { projectLock = try ProjectLock.acquire(project, timeout: lockTimeout) }
        let key = try ProjectKeyStore.store(RecordKey.generate(project: project.projectName), stateDirectory: project.stateDirectory, keepExisting: true)
        context.keyring.set(key)
        if !json {
          Output.err(
            "Created the key of project \(project.projectName) (id \(key.id)) in \(ProjectKeyStore.path(in: project.stateDirectory)); other machines and CI need it: drover key export")
        }
      } catch {
        report(error)
        throw ExitCode.failure
      }
    }
    PhaseTimings.mark("plan")
    let status = execute(plan, context: context)
    if status != 0 { throw ExitCode(status) }
  }

  /// Runs the plan and renders the outcome; returns the exit status.
  /// How Drover reaches the project's nodes over SSH: seeded nodes get Drover's user with the
  /// project's SSH key, and its files are written before any node is made (a node whose seed
  /// names a key Drover cannot use is unreachable). Also with no seeded pool left while pins
  /// remain: the nodes being deleted take theirs along. Nil: no key, or nothing needs it.
  static func nodeSSH(_ project: ProjectOptions, context: ProjectContext) throws(Diagnostic) -> NodeSSHAccess? {
    let pinsFile = NodeSSHAccess.knownHostsPath(stateDirectory: project.stateDirectory, project: project.projectName)
    guard let key = context.keyring.key, context.specs.poolSpecs.contains(where: \.seeded) || FileManager.default.fileExists(atPath: pinsFile) else {
      return nil
    }
    return try NodeSSHAccess.prepare(stateDirectory: project.stateDirectory, project: project.projectName, identity: SSHIdentity(deriving: key))
  }

  func execute(_ plan: Plan, context: ProjectContext) -> Int32 {
    let interrupt = self.interrupt ?? InterruptFlag.install()
    let started = Date()
    let json = self.json
    let nodeImages = images.nodeImages()
    let backends = context.backends
    let consoleDir = images.consoleDir
    let poolFolders = Dictionary(context.specs.pools.map { ($0.spec.name, ($0.file as NSString).deletingLastPathComponent) }) { a, _ in a }
    let hostPaths = HostPathPolicy(project: project.absoluteDir, allowed: CurrentMachine.settings.allowedRoots)
    let nodeSSH: NodeSSHAccess?
    do { nodeSSH = try Self.nodeSSH(project, context: context) } catch {
      Report.diagnostics([error], sources: [], format: json ? .json : .human, noColor: project.noColor)
      return 1
    }
    let engine = ApplyEngine(
      pools: context.specs.poolSpecs, backends: context.backends.mapValues { $0 }, project: project.projectName,
      journalDirectory: journalDirectory, keyring: context.keyring,
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
          if !json { Output.out(String(format: "[%7.2fs] %@ on %@: healthy", Date().timeIntervalSince(started), action.node, action.host)) }
        },
        onRollout: { pool, event in
          if json {
            ApplyEvents.rollout(pool: pool, event)
          } else {
            // A hook's output, indented under its step (made safe for the terminal); one block
            // at a time, as the nodes of a wave report at once.
            var block = String(format: "[%7.2fs] ", Date().timeIntervalSince(started)) + Terminal.printable(event.message)
            for line in (event.output ?? "").split(separator: "\n", omittingEmptySubsequences: false) where event.output != nil {
              block += "\n            | " + Terminal.printable(String(line))
            }
            ApplyProgress.lock.withLock { Output.out(block) }
          }
        }, nodeSSH: nodeSSH))
    let outcome = engine.run(plan)
    PhaseTimings.mark("execute")
    let failures = outcome.diagnostics
    if json {
      ApplyEvents.summary(
        added: outcome.added, changed: outcome.changed, destroyed: outcome.destroyed, failed: failures.count, skipped: outcome.executed.skipped.count,
        interrupted: outcome.interrupted || outcome.executed.interrupted, exitStatus: outcome.exitStatus, rollouts: outcome.rollouts,
        event: verb == "Apply" ? "summary" : "replacements")
    }
    if !failures.isEmpty {
      Report.diagnostics(failures, sources: [], format: json ? .json : .human, noColor: project.noColor)
    }
    let status = outcome.exitStatus
    if !json {
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

  func report(_ error: Error) {
    let diagnostics = (error as? DiagnosticConvertible)?.diagnostics ?? [.error("apply", "\(error)")]
    Report.diagnostics(diagnostics, sources: [], format: json ? .json : .human, noColor: project.noColor)
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
