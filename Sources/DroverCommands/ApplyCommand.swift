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

  @Argument(help: "A plan saved with 'drover plan --out'.")
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
    if planFile != nil && (!targeting.targets.isEmpty || !targeting.excludes.isEmpty || !targeting.replace.isEmpty) {
      throw ValidationError("--target, --exclude and --replace cannot be combined with a saved plan (it has its own)")
    }
  }

  func run() throws {
    let context = try ProjectContext.load(project, format: json ? .json : .human)
    let saved = try planFile.map(PlanFile.read)
    let options = PlanOptions(
      targets: saved?.targets ?? targeting.targets, excludes: saved?.excludes ?? targeting.excludes,
      imageDigests: images.catalogue.digestsByReference, project: project.projectName, forceReplace: saved?.forceReplace ?? targeting.replace)

    // Lock every declared pool in scope (sorted: no lock-order deadlock), then observe under the locks.
    let pools = context.specs.poolSpecs.map(\.name).filter { pool in
      options.targets.isEmpty || options.targets.contains { $0 == pool || $0.hasPrefix(pool + "-") }
    }
    var locks: [PoolLock] = []
    do {
      for pool in pools.sorted() {
        locks.append(
          try PoolLock.acquire(
            pool: pool, directory: project.stateDirectory + "/locks", command: CommandLine.arguments.joined(separator: " "),
            timeout: DurationArgument.seconds(lockTimeout)!))
      }
    } catch {
      report(error)
      throw ExitCode.failure
    }
    defer { locks.removeAll() }

    let (current, diagnostics) = makePlan(pools: context.specs.poolSpecs, observed: context.observe(), options: options)
    if diagnostics.hasErrors {
      if !json { Output.out(PlanView.human(current, color: project.color)) }
      Report.diagnostics(diagnostics, sources: context.sources, format: json ? .json : .human, noColor: project.noColor)
      throw ExitCode.failure
    }
    var plan = current
    if let saved {
      let stale = StalePlanCheck.check(saved: saved, current: current)
      if stale.hasErrors {
        Report.diagnostics(stale, sources: [], format: json ? .json : .human, noColor: project.noColor)
        if !json { Output.err("No action was taken.") }
        throw ExitCode.failure
      }
      plan = saved
    } else if !json {
      Output.out(PlanView.human(plan, color: project.color))
    }
    let activeRollouts = pools.filter { (try? RolloutJournal(directory: journalDirectory, pool: $0))?.active() != nil }
    guard plan.hasChanges || !activeRollouts.isEmpty else {
      if json { Output.jsonLine(["event": "summary", "added": 0, "changed": 0, "destroyed": 0, "failed": 0]) }
      return
    }
    if saved == nil && !autoApprove && plan.hasChanges {
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
    try execute(plan, context: context, activeRollouts: Set(activeRollouts))
  }

  var journalDirectory: String { project.stateDirectory + "/journal" }

  func execute(_ plan: Plan, context: ProjectContext, activeRollouts: Set<String>) throws {
    let interrupt = InterruptFlag.install()
    let started = Date()
    let json = self.json
    let nodeImages = images.nodeImages()
    let backends = context.backends
    // Replacements go through the rollout engine; a pool with a rollout in progress is only
    // touched by resuming it (its journal and the world decide what is left).
    let rolloutPools = activeRollouts.union(plan.rollouts.map(\.pool))
    var plain = plan
    plain.actions = plan.actions.filter { !rolloutPools.contains($0.pool) }
    let executor = Executor(
      backends: context.backends, shouldStop: { interrupt.isSet },
      prepare: { node, uri in
        guard let host = backends[uri] else { return node }
        return try nodeImages.prepare(node, host: host)
      },
      onEvent: { event in ApplyProgress.print(event, json: json, since: started) })
    var result = executor.apply(plain)
    if !interrupt.isSet {
      for failure in checkCreatedNodes(result.done, context: context, interrupt: interrupt, started: started) {
        result.failed.append(failure)
      }
    }
    var rolloutProblems: [String] = []
    for poolName in rolloutPools.sorted() where !interrupt.isSet && result.failed.isEmpty {
      guard let pool = context.specs.poolSpecs.first(where: { $0.name == poolName }) else { continue }
      let outcome = try runRollout(pool, actions: plan.actions.filter { $0.pool == poolName && $0.kind == .replace }, context: context, interrupt: interrupt, started: started)
      if outcome.interrupted { result.interrupted = true }
      if outcome.state.status == .completed {
        result.done += plan.actions.filter { $0.pool == poolName && $0.kind == .replace }
      } else {
        rolloutProblems += outcome.summary
      }
    }
    let added = result.done.filter { $0.kind == .create || $0.kind == .replace }.count
    let changed = result.done.filter { $0.kind == .update || $0.kind == .start }.count
    let destroyed = result.done.filter { $0.kind == .delete || $0.kind == .replace }.count
    if json {
      Output.jsonLine([
        "event": "summary", "added": added, "changed": changed, "destroyed": destroyed, "failed": result.failed.count,
        "skipped": result.skipped.count, "interrupted": result.interrupted,
      ])
    }
    if !result.failed.isEmpty {
      Report.diagnostics(result.failed.map(\.error), sources: [], format: json ? .json : .human, noColor: project.noColor)
    }
    if !json {
      let verdict =
        result.interrupted
        ? "Apply interrupted." : !result.succeeded ? "Apply failed." : !rolloutProblems.isEmpty ? "Apply stopped: a rollout did not complete." : "Apply complete!"
      Output.out("\n\(verdict) Nodes: \(added) added, \(changed) changed, \(destroyed) destroyed.")
      if !result.succeeded { Output.out("Run 'drover plan' to see what remains.") }
    }
    for line in rolloutProblems { Output.err(line) }
    if result.interrupted { throw ExitCode(130) }
    if !result.succeeded { throw ExitCode.failure }
    if !rolloutProblems.isEmpty { throw ExitCode(3) }
  }

  /// Health-checks every node this apply created or restarted, in parallel, within the pool's
  /// health timeout: a node counts as created only once it is ready.
  func checkCreatedNodes(_ done: [PlannedAction], context: ProjectContext, interrupt: InterruptFlag, started: Date) -> [(action: PlannedAction, error: Diagnostic)] {
    let pools = Dictionary(context.specs.poolSpecs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let checked = done.filter { ($0.kind == .create || $0.kind == .start || ($0.kind == .update && $0.restart)) && !(pools[$0.pool]?.health.isEmpty ?? true) }
    guard !checked.isEmpty else { return [] }
    let consoleDir = images.consoleDir
    let json = self.json
    let failures = Mutex<[(action: PlannedAction, error: Diagnostic)]>([])
    // Probes mostly wait (on a console log, a socket): up to 32 nodes are checked at once.
    BlockingFanOut.forEach(checked.count, width: 32) { i in
      let action = checked[i]
      let pool = pools[action.pool]!
      var endpoint = NodeEndpoint(
        name: action.node, host: action.host, pool: action.pool, image: action.after?.ownership.image ?? "",
        consoleLog: "\(consoleDir)/\(action.node).log")
      if let backend = context.backends[action.host] {
        let node = action.node
        endpoint.resolveAddress = { backend.address(of: node) }
      }
      let reason = HealthChecker().unhealthyReason(
        endpoint, checks: pool.health, deadline: Date().addingTimeInterval(pool.upgrade.healthTimeout.seconds), shouldStop: { interrupt.isSet })
      if let reason {
        failures.withLock {
          $0.append((action, .error("apply.unhealthy", "node \(action.node) is not healthy: \(reason)", subject: "node \(action.node) on \(action.host)")))
        }
      } else if !json {
        Output.out(String(format: "[%7.2fs] %@ on %@: healthy", Date().timeIntervalSince(started), action.node, action.host))
      }
    }
    return failures.withLock { $0 }
  }

  func runRollout(_ pool: PoolSpec, actions: [PlannedAction], context: ProjectContext, interrupt: InterruptFlag, started: Date) throws -> RolloutOutcome {
    let nodeImages = images.nodeImages()
    let backends = context.backends
    let consoleDir = images.consoleDir
    let json = self.json
    let hosts: [String: any HostBackend] = context.backends.mapValues { $0 }
    let runner = RolloutRunner(
      pool: pool, project: project.projectName, backends: hosts,
      journal: try RolloutJournal(directory: journalDirectory, pool: pool.name),
      hooks: RolloutRunner.Hooks(
        drainer: Drainers.make(pool.drain),
        prepare: { node, uri in
          guard let host = backends[uri] else { return node }
          return try nodeImages.prepare(node, host: host)
        },
        consoleLog: { "\(consoleDir)/\($0).log" }, shouldStop: { interrupt.isSet },
        onEvent: { line in
          if json {
            Output.jsonLine(["event": "rollout", "pool": pool.name, "message": line, "time": ISO8601DateFormatter().string(from: Date())])
          } else {
            Output.out(String(format: "[%7.2fs] ", Date().timeIntervalSince(started)) + line)
          }
        }))
    let digest = images.catalogue.image(for: pool.image)?.key ?? ""
    return try runner.run(actions: actions, imageDigest: digest)
  }

  func report(_ error: Error) {
    let diagnostics = (error as? DiagnosticConvertible)?.diagnostics ?? [.error("apply", "\(error)")]
    Report.diagnostics(diagnostics, sources: [], format: json ? .json : .human, noColor: project.noColor)
  }
}

/// Prints one apply event as a timestamped line or a JSON object.
enum ApplyProgress {
  static let lock = NSLock()

  static func print(_ event: ApplyEvent, json: Bool, since start: Date) {
    let a = event.action
    lock.lock()
    defer { lock.unlock() }
    if json {
      var object: [String: Any] = [
        "event": "step", "time": ISO8601DateFormatter().string(from: event.time), "status": event.status.rawValue,
        "action": a.kind.rawValue, "pool": a.pool, "node": a.node, "host": a.host,
      ]
      if let m = event.message { object["message"] = m }
      Output.jsonLine(object)
      return
    }
    let t = String(format: "%7.2fs", event.time.timeIntervalSince(start))
    let verb: String
    switch (a.kind, event.status) {
    case (_, .started): verb = ["create": "creating", "start": "starting", "update": "updating", "replace": "replacing", "delete": "destroying"][a.kind.rawValue]! + "…"
    case (_, .done): verb = ["create": "created", "start": "started", "update": "updated", "replace": "replaced", "delete": "destroyed"][a.kind.rawValue]!
    case (_, .failed): verb = "FAILED: \(event.message ?? "")"
    case (_, .skipped): verb = "skipped: \(event.message ?? "")"
    }
    Output.out("[\(t)] \(a.node) on \(a.host): \(verb)")
  }
}

/// Parses "30s"/"5m"-style command-line durations.
enum DurationArgument {
  static func seconds(_ text: String) -> Double? {
    for (unit, factor) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where text.hasSuffix(unit) {
      if let v = Double(text.dropLast(unit.count)), v >= 0, v.isFinite { return v * factor }
    }
    return Double(text).flatMap { $0 >= 0 ? $0 : nil }
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
