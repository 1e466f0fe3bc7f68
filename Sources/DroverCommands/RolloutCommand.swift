import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverRollout
import Foundation

/// `drover rollout …`: inspect and steer rolling upgrades.
struct RolloutCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rollout",
    abstract: "Show, pause, resume, abort and list rolling upgrades.",
    discussion: "Rollouts start from 'drover apply' when a pool's image changes; their journal is in .drover/journal/.",
    subcommands: [
      RolloutStatusCommand.self, RolloutShowCommand.self, RolloutPauseCommand.self, RolloutResumeCommand.self, RolloutAbortCommand.self,
      RolloutUndoCommand.self, RolloutFinishCommand.self, RolloutHistoryCommand.self,
    ])
}

/// The journal of every pool in the project.
struct RolloutJournals {
  let directory: String
  let projectName: String
  let stateDirectory: String

  /// Where the journals are, for this command.
  let state: StateStore

  init(_ project: LoadedProject, state: StateStore) {
    self.state = state
    directory = project.stateDirectory + "/journal"
    projectName = project.projectName
    stateDirectory = project.stateDirectory
  }

  func pools() throws -> [String] {
    if let shared = try state.backend() { return try shared.journalPools().filter { PoolName.isValid($0) } }
    return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(6)) }.sorted()
  }

  func journal(_ pool: String) throws -> RolloutJournal {
    guard PoolName.isValid(pool) else {
      throw Diagnostic.error("cli.unknown-pool", "'\(Terminal.printable(pool))' is not a pool name", hint: "pool names are lower-case letters, digits and '-'")
    }
    let keyring = Keyring(project: projectName, key: try ProjectKeyStore.load(project: projectName, stateDirectory: stateDirectory))
    let journal = try RolloutJournal(directory: directory, pool: pool, keyring: keyring, state: state)
    if let damage = journal.damage { JournalDamage.report(damage) }
    return journal
  }
}

struct RolloutStatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "status", abstract: "Where each pool's latest rollout is and why it stopped.")

  @OptionGroup var project: ProjectOptions
  @Argument(help: "Pools (default: all with a journal).", completion: NameCompletion.pools) var pools: [String] = []
  @Flag(help: "Print JSON.") var json = false
  @Flag(help: "Follow the rollouts in progress: print each change until they end (exit 0 completed, 3 not completed).")
  var watch = false
  @Option(help: "With --watch: how often to read the journal (100ms to 1m).") var interval = "2s"
  @Option(help: "With --watch: stop watching (exit 1) after this long.") var watchTimeout = "1h"

  func validate() throws {
    guard let i = DurationArgument.seconds(interval), i >= 0.1, i <= 60 else { throw ValidationError("--interval must be between 100ms and 1m") }
    guard let t = DurationArgument.seconds(watchTimeout), t > 0, t <= 7 * 86400 else { throw ValidationError("--watch-timeout must be between 1s and 7d") }
    if watch && json { throw ValidationError("--watch prints text; use rollout status --json in a loop for machines") }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check(pools, project: project, state: state)
    if watch { throw ExitCode(try follow(project, state: state)) }
    let journals = RolloutJournals(project, state: state)
    var objects: [[String: Any]] = []
    let locks = project.stateDirectory + "/locks"
    for pool in pools.isEmpty ? try journals.pools() : pools {
      // Who holds the pool now (an apply, a heal), on any machine when the state is shared.
      let holder = PoolLock.isHeld(pool: pool, directory: locks, state: state) ? PoolLock.holder(pool: pool, directory: locks, state: state) : nil
      let journal = try journals.journal(pool)
      guard let state = try journal.checkedRollouts().last else {
        if !json { Output.out("pool \(pool): no rollout" + (holder.map { "; locked by " + PoolLock.describe($0) } ?? "")) }
        continue
      }
      if json {
        var object = RolloutView.json(state)
        if let holder {
          object["locked_by"] = ["pid": Int(holder.pid), "host": holder.host, "command": holder.command, "since": ISO8601DateFormatter().string(from: holder.started)]
        }
        objects.append(object)
      } else {
        Output.out(RolloutView.human(state))
        if let holder { Output.out("  locked by \(PoolLock.describe(holder))") }
      }
    }
    if json { Output.json(["format_version": "1.0", "rollouts": objects]) }
  }
}

extension RolloutStatusCommand {
  /// `--watch`: the status of every watched pool with a rollout in progress, printed again each
  /// time it changes (the journal is read every `interval`, never a host), until none moves any
  /// more: each completed, rolled back, failed, paused, or left by its process (in progress in
  /// the journal, but nobody holds the pool's lock: the apply ended or died). Finite:
  /// `--watch-timeout` ends it. Returns the exit status: 0 when every one completed, else 3.
  func follow(_ project: LoadedProject, state store: StateStore) throws -> Int32 {
    let every = DurationArgument.seconds(interval) ?? 2
    let deadline = Date().addingTimeInterval(DurationArgument.seconds(watchTimeout) ?? 3600)
    let started = Date()
    var last = ""
    var watched: Set<String> = []
    while true {
      let journals = RolloutJournals(project, state: store)
      var blocks: [String] = []
      var active = false
      var ended: [RolloutState] = []
      let locks = project.stateDirectory + "/locks"
      for pool in pools.isEmpty ? try journals.pools() : pools {
        guard let state = try journals.journal(pool).checkedRollouts().last else { continue }
        // Moving: running or rolling back, with a process holding the pool's lock.
        let moving = (state.status == .running || state.status == .rollingBack) && PoolLock.isHeld(pool: pool, directory: locks, state: store)
        if state.isActive { watched.insert(state.id) }
        guard watched.contains(state.id) else { continue }
        active = active || moving
        if !moving { ended.append(state) }
        var block = RolloutView.human(state)
        if moving, let last = state.lastStep, !last.finished { block += "\n  now: \(last.node) \(last.step)" }
        if state.isActive && !moving && state.status != .paused {
          block += "\n  no process runs it (the apply ended or died): drover rollout resume \(pool) goes on"
        }
        blocks.append(block)
      }
      let text = blocks.joined(separator: "\n")
      if text != last {
        Output.out(String(format: "[%7.1fs]", Date().timeIntervalSince(started)) + (blocks.isEmpty ? " no rollout in progress" : ""))
        if !text.isEmpty { Output.out(text) }
        last = text
      }
      if !active { return ended.allSatisfy { $0.status == .completed } ? 0 : 3 }
      guard Date() < deadline else {
        Report.diagnostics(
          [.error("rollout.watch-timeout", "stopped watching after \(watchTimeout): the rollout is still in progress", hint: "drover rollout status --watch again to go on")],
          sources: [], format: .human, noColor: project.noColor)
        return 1
      }
      Thread.sleep(forTimeInterval: min(every, max(0.01, deadline.timeIntervalSinceNow)))
    }
  }
}

struct RolloutHistoryCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "history", abstract: "Every rollout of each pool, oldest first.")

  @OptionGroup var project: ProjectOptions
  @Argument(help: "Pools (default: all).", completion: NameCompletion.pools) var pools: [String] = []
  @Flag(help: "One JSON object per rollout instead of a table.") var json = false

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check(pools, project: project, state: state)
    let journals = RolloutJournals(project, state: state)
    var rows = [["POOL", "ROLLOUT", "KIND", "FROM", "TO", "STATUS", "STARTED", "NODES", "FAILED"]]
    let f = ISO8601DateFormatter()
    for pool in pools.isEmpty ? try journals.pools() : pools {
      for s in try journals.journal(pool).checkedRollouts() {
        let started = f.string(from: Date(timeIntervalSince1970: s.started))
        if json {
          Output.jsonLine([
            "format_version": "1.0", "pool": s.pool, "rollout": s.id, "kind": s.kind.rawValue, "from_image": s.fromImage, "to_image": s.toImage,
            "status": s.status.rawValue, "started": started, "ended": s.ended.map { f.string(from: Date(timeIntervalSince1970: $0)) } ?? NSNull(),
            "nodes": s.schedule.joined().map { $0 }, "done": s.done.sorted(), "failed": s.failed,
            "reasons": s.nodes.mapValues(\.reason),
          ])
        } else {
          rows.append([s.pool, s.id, s.kind.rawValue, s.fromImage, s.toImage, s.status.rawValue, started, "\(s.done.count)/\(s.nodes.count)", "\(s.failed.count)"])
        }
      }
    }
    if !json { Output.out(Table.render(rows)) }
  }
}

struct RolloutPauseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pause", abstract: "Ask a running rollout to stop after the nodes in flight; 'resume' continues it.")

  @OptionGroup var project: ProjectOptions
  @Argument(help: "The pool.", completion: NameCompletion.pools) var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    let journal = try RolloutJournals(project, state: state).journal(pool)
    guard let active = try journal.active(), active.status == .running else {
      throw Diagnostic.error("rollout.none", "pool \(pool) has no running rollout", hint: "drover rollout status \(pool) shows its last rollout")
    }
    try journal.append(active.id, .pauseRequested)
    Output.out("pause requested for rollout \(active.id); it stops after the nodes in flight")
  }
}

struct RolloutResumeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume", abstract: "Continue a paused or interrupted rollout from its journal and the observed world.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The pool.", completion: NameCompletion.pools) var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    guard try RolloutJournals(project, state: try project.stateStore()).journal(pool).active() != nil else {
      throw Diagnostic.error("rollout.none", "pool \(pool) has no rollout to resume", hint: "drover rollout status \(pool) shows its last rollout")
    }
    try RolloutResumer.resume(pool: pool, project: project, images: images)
  }
}

struct RolloutAbortCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "abort", abstract: "Stop a rollout and put every node it replaced back on the previous image.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The pool.", completion: NameCompletion.pools) var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    let journal = try RolloutJournals(project, state: state).journal(pool)
    guard let active = try journal.active() else {
      throw Diagnostic.error("rollout.none", "pool \(pool) has no rollout to abort", hint: "drover rollout status \(pool) shows its last rollout")
    }
    try journal.append(active.id, .abortRequested)
    Output.out("abort requested for rollout \(active.id)")
    // A running rollout sees the request between nodes. A paused one, or one whose process died
    // (its journal says running but nobody holds the pool's lock), is rolled back now.
    let orphaned = !PoolLock.isHeld(pool: pool, directory: project.stateDirectory + "/locks", state: state)
    if active.status == .paused || orphaned { try RolloutResumer.resume(pool: pool, project: project, images: images, kind: .rolloutAbort) }
  }
}

struct RolloutUndoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "undo",
    abstract: "Roll a pool's last completed rollout back: the nodes it kept (keep_previous) start again on their own disks, the others are rebuilt.",
    discussion:
      "The pool's spec still names the new image: set it back before the next apply, or that apply rolls forward again.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The pool.", completion: NameCompletion.pools) var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    let journal = try RolloutJournals(project, state: state).journal(pool)
    let rollouts = try journal.checkedRollouts()
    if let active = rollouts.last(where: \.isActive) {
      throw Diagnostic.error(
        "rollout.in-progress", "pool \(pool) has rollout \(active.id) in progress (\(active.status.rawValue))", subject: "pool \(pool)",
        hint: "drover rollout abort \(pool) rolls a rollout in progress back")
    }
    guard let last = rollouts.last, last.status == .completed, last.kind == .upgrade else {
      throw Diagnostic.error(
        "rollout.none", "pool \(pool) has no completed rollout to undo (its last one is \(rollouts.last.map { "\($0.id), \($0.status.rawValue)" } ?? "none"))",
        subject: "pool \(pool)", hint: "drover rollout history \(pool) lists them")
    }
    guard !PoolLock.isHeld(pool: pool, directory: project.stateDirectory + "/locks", state: state) else {
      throw Diagnostic.error("rollout.locked", "pool \(pool) is locked by another Drover run", subject: "pool \(pool)", hint: "wait for it, then undo")
    }
    // Only what the rollout changed is put back: a pool changed since is refused, untouched.
    let context = try ProjectContext.load(project, readOnly: true, imagePool: images.imagePool, keepAliveByDefault: false)
    var serving: [Int: [Int]] = [:]
    for host in context.observe().hosts.values {
      for d in host.domains {
        guard let o = d.ownership, o.project == project.projectName, o.pool == pool, o.kept == nil else { continue }
        serving[o.index, default: []].append(o.generation)
      }
    }
    let blockers = undoBlockers(last, serving: serving)
    if !blockers.isEmpty {
      throw Diagnostic.error(
        "rollout.changed", "pool \(pool) changed since rollout \(last.id): \(blockers.joined(separator: "; "))", subject: "pool \(pool)",
        hint: "set the pool's image back to \(last.fromImage) and apply: that rolls every node back cold")
    }
    try journal.append(last.id, .rollbackStarted, detail: "undo requested (drover rollout undo)")
    Output.out("undoing rollout \(last.id) of pool \(pool): back to \(last.fromImage) (kept nodes start again; the others are rebuilt)")
    try RolloutResumer.resume(pool: pool, project: project, images: images, kind: .rolloutUndo)
  }
}

struct RolloutFinishCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "finish", abstract: "Remove the nodes a pool's rollouts kept for rollback (keep_previous): after this, a rollback rebuilds.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The pool.", completion: NameCompletion.pools) var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    if let active = try RolloutJournals(project, state: state).journal(pool).active() {
      throw Diagnostic.error(
        "rollout.in-progress", "pool \(pool) has rollout \(active.id) in progress: its kept nodes are its rollback", subject: "pool \(pool)",
        hint: "let it end (drover rollout resume \(pool)) first")
    }
    try RolloutResumer.resume(pool: pool, project: project, images: images, kind: .rolloutFinish)
  }
}

/// Runs `apply` for one pool: it resumes the pool's active rollout under the pool's lock.
enum RolloutResumer {
  static func resume(pool: String, project: LoadedProject, images: ImagePaths, kind: ApplyJobKind = .rolloutResume) throws {
    try ApplyWiring(project: project, images: images, json: false).run(ApplyRequest(kind: kind, targets: [pool]), approver: AutoApprove())
  }
}

/// Renders a rollout's state.
enum RolloutView {
  static func human(_ s: RolloutState) -> String {
    var lines = ["pool \(s.pool): rollout \(s.id) \(s.fromImage) → \(s.toImage): \(s.status.rawValue)"]
    for (i, wave) in s.schedule.enumerated() {
      let nodes = wave.map { n -> String in
        if s.rolledBack.contains(n) { return "\(n) (rolled back)" }
        if let why = s.failed[n] { return "\(n) (FAILED: \(why))" }
        return s.done.contains(n) ? "\(n) (done)" : "\(n) (pending)"
      }
      lines.append("  \(i == 0 && s.policy.canary > 0 ? "canary" : "wave \(i)"): \(nodes.joined(separator: ", "))")
    }
    lines.append("  failed: \(s.failed.count) of budget \(s.policy.budget) (then \(s.policy.onBudgetExceeded.rawValue))")
    if let last = s.lastStep { lines.append("  last step: \(last.node) \(last.step) (\(last.finished ? "finished" : "started, not finished"))") }
    for (wave, verdict) in s.analyzed.sorted(by: { $0.key < $1.key }) {
      lines.append("  analysis of \(wave == 0 && s.policy.canary > 0 ? "the canary" : "wave \(wave)"): \(verdict)")
    }
    if !s.measurements.isEmpty { lines.append("  measurements: \(s.measurements.count) (drover rollout show \(s.id) lists their values)") }
    lines += DeferralView.lines(s, now: Date().timeIntervalSince1970)
    if s.status == .paused || s.status == .rolledBack || s.budgetExceeded {
      lines.append("  stopped because: \(s.abortRequested ? "aborted by request" : s.budgetExceeded ? "the error budget was exceeded" : s.pauseReason.map { "paused: \($0)" } ?? "paused")")
    }
    return lines.joined(separator: "\n")
  }

  static func json(_ s: RolloutState) -> [String: Any] {
    var o: [String: Any] = [
      "pool": s.pool, "id": s.id, "from": s.fromImage, "to": s.toImage, "status": s.status.rawValue, "schedule": s.schedule,
      "done": s.done.sorted(), "failed": s.failed, "rolled_back": s.rolledBack.sorted(), "budget": s.policy.budget,
    ]
    if let last = s.lastStep { o["last_step"] = ["node": last.node, "step": last.step, "finished": last.finished] }
    if !s.measurements.isEmpty { o["measurements"] = AnalysisView.json(s) }
    if !s.deferrals.isEmpty { o["deferrals"] = s.deferrals.map(DeferralView.object) }
    return o
  }
}
