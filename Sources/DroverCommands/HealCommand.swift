import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation

/// `drover heal`: one self-healing pass, for cron and timers.
struct HealCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "heal",
    abstract: "One self-healing pass: replace nodes unhealthy for longer than their pool's remediation allows.",
    discussion: """
      For every pool with remediation:, judges each verified node by libvirt's state (shut off, \
      crashed, paused) and its heartbeat, then replaces the nodes unhealthy for longer than \
      unhealthy_after through cordon, drain, replace, health and uncordon, rebuilt from their own \
      records and journaled as a rollout of kind heal. Nothing is replaced when more nodes than \
      max_unhealthy are unhealthy at once. Exit 0: all healthy; 2: unhealthy nodes left \
      (short-circuit, protected, cooldown, waiting, rate limit); 3: a remediation failed.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @OptionGroup var heal: HealOptions

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    var session = HealSession(project: project, images: images, options: heal)
    let status = session.pass()
    if status != 0 { throw ExitCode(status) }
  }
}

/// `drover watch`: the heal pass every `--interval` until SIGTERM or Ctrl-C.
struct WatchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "watch",
    abstract: "Run the heal pass every --interval until SIGTERM (for a service).",
    discussion: """
      Each pass reads the specs and connects to the hosts and the state database afresh, so a \
      host or database that went away is retried and an edited spec is picked up. A pass that \
      fails (its state or a host could not be read) is reported and counted; after \
      --max-failed-passes failed passes in a row, watch exits 1 so its service manager restarts it.

      Run it on two or more machines for a highly available service: one leads (it holds the \
      project's watch lock) and heals; the others stand by and take over within the state's lease \
      (state.lease, 15s by default) plus a second when the leader dies, freezes or is cut off. The \
      heal ledger and journal are in the shared state, so the new leader carries on each incident. \
      --status names the leader.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @OptionGroup var heal: HealOptions
  @Option(help: "Time between passes, e.g. 10s or 1m.") var interval: String = "30s"
  @Option(help: "Failed passes in a row (state or a host not read) after which watch exits 1, for its service manager to restart it.")
  var maxFailedPasses: Int = 3
  @Flag(help: "Name the watch process that leads this project's healing, and exit.") var status = false

  func validate() throws {
    guard let s = DurationArgument.seconds(interval), s >= 0.1, s <= 86_400 else {
      throw ValidationError("--interval must be a duration from 100ms to 24h, such as 10s or 1m")
    }
    guard (1...1000).contains(maxFailedPasses) else { throw ValidationError("--max-failed-passes must be from 1 to 1000") }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    if status { return try WatchView.status(project, json: heal.json) }
    let images = self.images.resolved(project)
    let seconds = DurationArgument.seconds(interval) ?? 30
    let flag = InterruptFlag.install()
    var session = HealSession(project: project, images: images, options: heal)
    session.interrupt = flag
    var failedInARow = 0
    // The lead lives on a state session of its own, kept while this process leads. A dry run
    // changes nothing, so it never takes the lead from the watches that heal.
    let leadership = WatchLeadership(stateDirectory: project.stateDirectory, command: CommandLine.arguments.joined(separator: " "), state: try project.stateStore())
    var said: String?
    defer { leadership.resign() }
    while !flag.isSet {
      // The monotonic clock: a wall clock stepped backwards never stalls the loop.
      let began = ProcessInfo.processInfo.systemUptime
      var passFailed: Bool
      switch heal.dryRun ? .success(.leading(token: nil, took: false)) : Result(catching: { try leadership.ensure() }) {
      case .success(let role):
        if let why = leadership.lostBecause { WatchView.lost(why, json: heal.json) }
        if !heal.dryRun, WatchView.key(role) != said { WatchView.say(role, json: heal.json) }
        said = WatchView.key(role)
        session.leadership = leadership.fence
        if case .standingBy = role {
          failedInARow = 0
          // A standby asks again soon: the lead is taken within a poll of its being free.
          Self.sleep(min(seconds, WatchLeadership.standbyPoll), unless: flag)
          continue
        }
        // Each pass loads the project afresh: its own host connections and its own state session
        // (a database that restarted is one pass's problem).
        _ = session.pass()
        passFailed = session.lastPassFailed
      case .failure(let error):
        if let why = leadership.lostBecause { WatchView.lost(why, json: heal.json) }
        session.report(error)
        said = nil
        passFailed = true
      }
      if passFailed {
        failedInARow += 1
        session.failedPasses += 1
        if failedInARow >= maxFailedPasses {
          throw Diagnostic.error(
            "watch.failing", "\(failedInARow) heal passes in a row could not read their state or a host: watch stops so its service manager can restart it",
            hint: "see the errors above")
        }
      } else {
        failedInARow = 0
      }
      Self.sleep(WatchPacing.remaining(began: began, now: ProcessInfo.processInfo.systemUptime, interval: seconds), unless: flag)
    }
  }

  /// Sleeps `seconds`, taken once and slept by count in short steps: SIGTERM ends it at once.
  static func sleep(_ seconds: Double, unless flag: InterruptFlag) {
    var wait = seconds
    while !flag.isSet && wait > 0 {
      Thread.sleep(forTimeInterval: min(0.1, wait))
      wait -= 0.1
    }
  }
}

struct HealOptions: ParsableArguments {
  @Flag(help: "Show the pass (what is unhealthy, what would be replaced) and change nothing.") var dryRun = false
  @Flag(help: "Print one JSON event per line instead of text.") var json = false
  @Option(help: "How long to wait for another apply's lock on a pool, e.g. 30s (a locked pool is skipped this pass).")
  var lockTimeout: String = "0s"
  @Option(help: "Write Prometheus textfile metrics here after each pass (for node_exporter's textfile collector).")
  var textfile: String?

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else { throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 5m") }
  }
}

/// One heal pass, from options to exit status: load the project, lock the pools with
/// `remediation:`, observe, decide (`HealEngine`), render, run the decided replacements through
/// the apply path, write metrics.
struct HealSession {
  var project: LoadedProject
  var images: ImagePaths
  var options: HealOptions
  var interrupt: InterruptFlag? = nil
  /// The time each pass judges silence and cooldowns by (a stepped clock in tests).
  var clock: any EngineClock = SystemClock()
  /// Whether the last pass could not read its state or a host (watch counts them in a row).
  var lastPassFailed = false
  /// Failed passes of this process so far (`drover_heal_pass_failures_total`).
  var failedPasses = 0
  /// Under `watch`: the lead each pass acts under.
  var leadership: Fence? = nil

  mutating func pass() -> Int32 {
    // Failed until it has read its state and every host (an early error return is a failure).
    lastPassFailed = true
    return run()
  }

  private mutating func run() -> Int32 {
    let context: ProjectContext
    do { context = try ProjectContext.load(project, imagePool: images.imagePool) } catch {
      if let exit = error as? ExitCode { return exit.rawValue }
      report(error)
      return 1
    }
    let consoleDir = images.consoleDir
    let ssh: NodeSSHAccess?
    do { ssh = try ApplyWiring.nodeSSH(project, keyring: context.keyring, pools: context.specs.poolSpecs) } catch {
      report(error)
      return 1
    }
    // A host entry of drover.yaml may set its own outage threshold; a plain URI has the default.
    let thresholds = Dictionary(project.hosts.compactMap { e in e.outageThreshold.map { (e.uri, $0) } }) { a, _ in a }
    var request = HealRequest(
      dryRun: options.dryRun, lockTimeout: DurationArgument.seconds(options.lockTimeout) ?? 0, outageThresholds: thresholds,
      consoleLog: { "\(consoleDir)/\($0).log" }, ssh: ssh)
    request.leadership = leadership
    do { request.metrics = try ApplyWiring.metrics(project) } catch {
      report(error)
      return 1
    }
    let wiring = ApplyWiring(project: project, images: images, json: options.json, interrupt: interrupt)
    var runContext = wiring.runContext(context, approver: AutoApprove())
    runContext.clock = clock
    let json = options.json, dryRun = options.dryRun, color = project.color
    let outcome: HealJobOutcome
    do {
      outcome = try HealJob.run(
        request, in: runContext, engine: { run throws(Diagnostic) in try wiring.engine(run, loaded: context) },
        decided: { HealView.render($0, json: json, dryRun: dryRun, color: color) },
        repaired: { HealView.render($0, json: json) },
        replaced: { applied in
          _ = wiring.render(applied, kind: .heal)
          if !applied.diagnostics.isEmpty { report(CommandFailure(applied.diagnostics)) }
        })
    } catch {
      report(error)
      return 1
    }
    guard let pass = outcome.pass else {
      lastPassFailed = false
      if options.json {
        Output.jsonLine(["event": "summary", "kind": "heal", "format_version": HealPass.formatVersion, "exit_status": 0, "pools": [String]()])
      } else {
        Output.out("No pool of project \(project.projectName) declares remediation: nothing to heal.")
      }
      return 0
    }
    for error in outcome.errors { report(error) }
    var status = outcome.status
    if let textfile = options.textfile {
      do {
        try HealMetrics.write(
          pass, failed: outcome.failed, dryRun: options.dryRun, stateDirectory: project.stateDirectory, keyring: context.keyring, state: context.state,
          failedPasses: failedPasses + (outcome.passFailed ? 1 : 0), to: textfile)
      } catch {
        report(error)
        if status == 0 { status = 1 }
      }
    }
    if options.json { Output.jsonLine(["event": "summary", "kind": "heal", "format_version": HealPass.formatVersion, "exit_status": Int(status)]) }
    lastPassFailed = outcome.passFailed
    return status
  }

  func report(_ error: Error) {
    // A pass's problems are said as the pass goes (the loop goes on); a command's failure
    // (the edge) is said once when heal or watch ends.
    let diagnostics = Diagnostic.list(of: error, code: "heal")
    Report.diagnostics(diagnostics, sources: (error as? CommandFailure)?.sources ?? [], format: options.json ? .json : .human, noColor: project.noColor)
  }
}
