import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation

/// Which command's job an apply is: what its outcome is called, in words and in JSON. Decided by
/// the job, never by comparing the words.
public enum ApplyJobKind: String, Sendable, CaseIterable {
  case apply, rolloutResume, rolloutAbort, hostDrain, heal
  /// `drover rollout undo` (a completed rollout rolled back from its kept nodes) and `drover
  /// rollout finish` (its kept nodes removed), #45.
  case rolloutUndo, rolloutFinish

  /// "Apply complete!", "Heal failed: …".
  public var verb: String { self == .heal ? "Heal" : "Apply" }
  /// The JSON event that sums the run up: a heal's replacements are one part of its pass.
  public var summaryEvent: String { self == .heal ? "replacements" : "summary" }
}

/// Says yes or no to a plan before anything changes: a person at a terminal, `--auto-approve`,
/// or a pipeline that cannot be asked. Injected, so those three differ only here.
public protocol Approver: Sendable {
  func approve(_ plan: Plan) -> Approval
}

public enum Approval: Sendable, Equatable {
  case approved
  case declined
  /// Nobody can be asked (no terminal): the job stops with this, nothing changed.
  case cannotAsk(Diagnostic)
}

/// `--auto-approve`, resumes, drains the user approved, heal passes.
public struct AutoApprove: Approver {
  public init() {}
  public func approve(_ plan: Plan) -> Approval { .approved }
}

/// The time a job reads. The system's in use; tests step their own.
public protocol EngineClock: Sendable {
  func now() -> Date
}

public struct SystemClock: EngineClock {
  public init() {}
  public func now() -> Date { Date() }
}

/// What a job is given to run with, as values (#34: no process globals on this path): the
/// project, its state folder, its specs and the hosts connected for this run, the clock, the
/// approver and where to say what happens before the outcome.
public struct RunContext: Sendable {
  public var project: String
  public var stateDirectory: String
  public var pools: [PoolSpec]
  public var backends: [String: any HostBackend]
  /// Hosts that could not be connected, with why.
  public var unreachable: [String: String]
  /// Hosts the pool files name (the others read are remembered ones).
  public var declaredHosts: Set<String>
  /// The project's record key: set by the job when it makes one.
  public var keyring: Keyring
  /// Where locks and journals are: the state folder or the project's database (opened on
  /// first use, closed with the run).
  public var state: StateStore
  /// Baked images' digests by `name@version`.
  public var imageDigests: [String: String]
  public var hostLimits: [String: HostLimits]
  /// Which URIs may be remembered in the state folder (the rule pool files obey).
  public var isRememberable: @Sendable (String) -> Bool
  public var clock: any EngineClock
  public var approver: any Approver
  /// The command line, written beside every lock this job holds.
  public var lockCommand: String
  public var say: @Sendable (JobNotice) -> Void

  public init(
    project: String, stateDirectory: String, pools: [PoolSpec], backends: [String: any HostBackend], unreachable: [String: String] = [:],
    declaredHosts: Set<String>, keyring: Keyring, state: StateStore, imageDigests: [String: String] = [:], hostLimits: [String: HostLimits] = [:],
    isRememberable: @escaping @Sendable (String) -> Bool, clock: any EngineClock = SystemClock(), approver: any Approver = AutoApprove(),
    lockCommand: String, say: @escaping @Sendable (JobNotice) -> Void = { _ in }
  ) {
    self.project = project
    self.stateDirectory = stateDirectory
    self.pools = pools
    self.backends = backends
    self.unreachable = unreachable
    self.declaredHosts = declaredHosts
    self.keyring = keyring
    self.state = state
    self.imageDigests = imageDigests
    self.hostLimits = hostLimits
    self.isRememberable = isRememberable
    self.clock = clock
    self.approver = approver
    self.lockCommand = lockCommand
    self.say = say
  }

  /// Every host read (remembered ones included), each within its call deadline.
  public func observeAsRead() -> ObservedWorld {
    WorldObserver.observe(backends.keys.sorted().compactMap { backends[$0] }, unreachable: unreachable)
  }
}

/// What a job says before its outcome, as it happens.
public enum JobNotice: Sendable {
  /// Warnings about the plan (a pool left out by `--skip-unreachable`), before anything is done.
  case warnings([Diagnostic])
  /// The plan made now, shown before it is approved (never for a saved plan: it was reviewed).
  case planned(Plan, observed: ObservedWorld)
  /// The project's key was made, after approval, right before anything changed.
  case keyCreated(RecordKey, path: String)
  /// A rollout journal had damaged lines (the records before them are intact).
  case journalDamaged(String)
  /// A phase ended (observe, plan, execute), for `DROVER_TIMINGS`.
  case phase(String)
}

/// What an apply job is asked to do.
public struct ApplyRequest: Sendable {
  public var kind: ApplyJobKind
  /// A saved plan, applied exactly (its own targeting), and the file it came from.
  public var saved: Plan?
  public var savedFrom: String?
  public var targets: [String]
  public var excludes: [String]
  public var replace: [String]
  public var prune: Bool
  public var skipUnreachable: Bool
  /// How long to wait for a pool's lock another process holds.
  public var lockTimeout: Double
  /// The hosts a drain empties: the plan may hold nothing but their moves.
  public var draining: Set<String>

  public init(
    kind: ApplyJobKind = .apply, saved: Plan? = nil, savedFrom: String? = nil, targets: [String] = [], excludes: [String] = [], replace: [String] = [],
    prune: Bool = false, skipUnreachable: Bool = false, lockTimeout: Double = 0, draining: Set<String> = []
  ) {
    self.kind = kind
    self.saved = saved
    self.savedFrom = savedFrom
    self.targets = targets
    self.excludes = excludes
    self.replace = replace
    self.prune = prune
    self.skipUnreachable = skipUnreachable
    self.lockTimeout = lockTimeout
    self.draining = draining
    if let saved {
      self.targets = saved.targets
      self.excludes = saved.excludes
      self.replace = saved.forceReplace
      self.prune = saved.prune
    }
  }

  /// Resuming (or aborting) a journaled rollout finishes it as its journal says.
  public var resuming: Bool { kind == .rolloutResume || kind == .rolloutAbort || kind == .rolloutUndo }
  /// `drover rollout finish`: the plan removes kept nodes and nothing else.
  public var finishKept: Bool { kind == .rolloutFinish }
}

/// How an apply job ended when it did not stop on an error.
public enum ApplyJobResult: Sendable {
  /// The plan changes nothing: nothing was asked, nothing done.
  case noChanges(Plan)
  /// The approver said no: nothing changed.
  case declined(Plan)
  /// The plan ran: what happened to each planned action.
  case ran(Plan, ApplyOutcome)
}

/// An apply job that stopped before changing anything, and why.
public struct ApplyRefusal: Error, DiagnosticConvertible {
  public var diagnostics: [Diagnostic]
  /// The plan as far as it was made, shown before the errors (planning errors only).
  public var incompletePlan: Plan?
  /// The diagnostics point into the spec files (their source lines are worth showing).
  public var inSpecs = false
  /// People are told that nothing was done.
  public var saysNoActionTaken = false

  public init(_ diagnostics: [Diagnostic], incompletePlan: Plan? = nil, inSpecs: Bool = false, saysNoActionTaken: Bool = false) {
    self.diagnostics = diagnostics
    self.incompletePlan = incompletePlan
    self.inSpecs = inSpecs
    self.saysNoActionTaken = saysNoActionTaken
  }
}

/// One apply, from a request to its outcome (#34): lock → observe → plan (or check a saved plan)
/// → approve → make the key if the project has none → execute → outcome. `apply`, `rollout
/// resume|abort` and `host drain` run it; a heal pass runs its `execute` half. The command
/// around it parses, builds the context and renders; every decision is here or below.
public enum ApplyJob {
  /// Runs `request` in `context`; `engine` builds the executor once the key is known (its node
  /// SSH access is derived from the key).
  public static func run(
    _ request: ApplyRequest, in context: RunContext, engine: (RunContext) throws(Diagnostic) -> ApplyEngine
  ) throws(ApplyRefusal) -> ApplyJobResult {
    // Lock every declared pool in scope (sorted: no lock-order deadlock), then observe under the locks.
    let declared = Set(context.pools.map(\.name))
    let pools = declared.filter { pool in
      request.targets.isEmpty || request.targets.contains { poolOfSelector($0, pools: declared) == pool }
    }
    var held = HeldLocks()
    defer { held.release() }
    do {
      // Pruning deletes pools no file declares, so no per-pool lock covers it: the project lock does.
      if request.prune { held.project = try projectLock(context, timeout: request.lockTimeout) }
      for pool in pools.sorted() {
        held.pools.append(
          try PoolLock.acquire(
            pool: pool, directory: context.stateDirectory + "/locks", command: context.lockCommand, timeout: request.lockTimeout, state: context.state))
      }
    } catch {
      throw ApplyRefusal(Diagnostic.list(of: error, code: "apply.lock"))
    }

    let asRead = context.observeAsRead()
    context.say(.phase("observe"))
    let observed = ProjectHosts.withoutAliases(asRead, declared: context.declaredHosts)
    let options: PlanOptions
    do { options = try planOptions(request, in: context) } catch { throw ApplyRefusal(Diagnostic.list(of: error, code: "rollout.journal")) }
    var (current, diagnostics) = makePlan(pools: context.pools, observed: observed, options: options)
    diagnostics += drainOnly(current, draining: request.draining)
    do {
      let project = context.project, declaredHosts = context.declaredHosts
      try KnownHostsFile.update(stateDirectory: context.stateDirectory, project: project, isAcceptable: context.isRememberable) { now in
        ProjectHosts.toRemember(declared: declaredHosts, remembered: now, observed: asRead, project: project)
      }
    } catch { throw ApplyRefusal([error]) }
    if diagnostics.hasErrors { throw ApplyRefusal(diagnostics, incompletePlan: current, inSpecs: true) }
    if !diagnostics.isEmpty { context.say(.warnings(diagnostics)) }

    let records = TrustedRecords(observed, project: context.project, keyHeld: context.keyring.key != nil)
    if context.keyring.key == nil && current.hasChanges && records.keyed {
      throw ApplyRefusal(
        [
          .error(
            "records.no-key",
            "the hosts hold records of project \(context.project) sealed with key \(records.foreignKeyID ?? "?"), and this machine has no key for it",
            subject: "project \(context.project)",
            hint: "import the key (drover key export on a machine that has it, then drover key import here, or set DROVER_PROJECT_KEY); apply changes nothing without it")
        ], saysNoActionTaken: true)
    }
    var plan = current
    if let saved = request.saved {
      let stale = staleness(saved: saved, current: current, from: request.savedFrom, context: context)
      if stale.hasErrors { throw ApplyRefusal(stale, saysNoActionTaken: true) }
      plan = saved
    } else {
      context.say(.planned(plan, observed: observed))
    }
    guard plan.hasChanges else { return .noChanges(plan) }
    if request.saved == nil {
      switch context.approver.approve(plan) {
      case .approved: break
      case .declined: return .declined(plan)
      case .cannotAsk(let why): throw ApplyRefusal([why])
      }
    }
    if context.keyring.key == nil { try makeKey(request, in: context, held: &held) }
    context.say(.phase("plan"))
    var built: ApplyEngine
    do { built = try engine(context) } catch { throw ApplyRefusal([error]) }
    // Every step that changes a VM proves first that this job still holds these locks (#41).
    built.hooks.fence = held.fence
    let outcome = execute(plan, engine: built)
    context.say(.phase("execute"))
    return .ran(plan, outcome)
  }

  /// Runs a plan already decided and approved (a heal pass's replacements come here).
  public static func execute(_ plan: Plan, engine: ApplyEngine) -> ApplyOutcome {
    engine.run(plan)
  }

  /// What plan and apply plan with: the same options from either command, the journals read
  /// once (under the pools' locks when applying).
  public static func planOptions(_ request: ApplyRequest, in context: RunContext) throws -> PlanOptions {
    let journaled = try JournaledRollouts.read(pools: context.pools, stateDirectory: context.stateDirectory, keyring: context.keyring, state: context.state) {
      context.say(.journalDamaged($0))
    }
    var options = PlanOptions(
      targets: request.targets, excludes: request.excludes, imageDigests: context.imageDigests, project: context.project,
      forceReplace: request.replace, activeRollouts: journaled.active, prune: request.prune)
    options.resuming = request.resuming
    options.finishedRollouts = journaled.finished
    options.keyHeld = context.keyring.key != nil
    options.skipUnreachable = request.skipUnreachable
    options.hostLimits = context.hostLimits
    options.draining = request.draining
    options.now = context.clock.now().timeIntervalSince1970
    options.finishKept = request.finishKept
    return options
  }

  /// The pools a drain of `host` covers: those with nodes of the project there, and those with
  /// a rollout in progress (a drain cut short is finished by running it again), if a file
  /// declares them; and the undeclared pools whose nodes stay (only `--prune` removes them).
  public static func drainScope(
    host: String, observed: ObservedWorld, project: String, declared: Set<String>, active: Set<String>
  ) -> (pools: [String], undeclared: [String]) {
    let there = Set((observed.hosts[host]?.domains ?? []).compactMap { d in d.ownership.flatMap { $0.project == project ? $0.pool : nil } })
    return (there.union(active).intersection(declared).sorted(), there.subtracting(declared).sorted())
  }

  /// A drain moves nodes and does nothing else: any other change in the plan is an error.
  public static func drainOnly(_ plan: Plan, draining: Set<String>) -> [Diagnostic] {
    let others = plan.actions.filter { !($0.kind == .replace && draining.contains($0.host) && $0.destination != nil) }
    guard !draining.isEmpty, let first = others.first else { return [] }
    return [
      .error(
        "host.drain-other-changes",
        "pool \(first.pool) has changes besides the drain (\(others.count), first: \(first.kind.rawValue) \(first.node) on \(first.host): \(first.reason)); a drain moves nodes and does nothing else",
        subject: "pool \(first.pool)", hint: "apply them first (drover plan, drover apply), then drain again")
    ]
  }

  /// Why a saved plan may not run now: the world or the specs moved since it was saved, or its
  /// actions are not what this Drover would run (a reviewer read those, and the accelerators and
  /// programs they run with).
  public static func staleness(saved: Plan, current: Plan, from file: String?, context: RunContext) -> [Diagnostic] {
    let heals = context.pools.flatMap { HealEngine.heals(stateDirectory: context.stateDirectory, pool: $0.name, keyring: context.keyring, state: context.state) }
    var stale = StalePlanCheck.check(saved: saved, current: current, heals: heals)
    if !stale.hasErrors,
      saved.actions != current.actions || saved.rollouts != current.rollouts || saved.accelerators != current.accelerators
        || saved.programs != current.programs
    {
      stale.append(
        .error(
          "plan.stale", "the saved plan's actions are not what this Drover would do now (the file was edited, or made by another version)",
          subject: file, hint: "run drover plan --out again and review the new plan"))
    }
    return stale
  }

  /// Records are sealed with the project key. It is made here, after approval and right before
  /// anything changes, only when the hosts hold no keyed record of the project (a new project,
  /// or one whose records an older Drover wrote) and the plan covers the whole project: a key
  /// made while some hosts or pools were left out could be a second key of the project.
  static func makeKey(_ request: ApplyRequest, in context: RunContext, held: inout HeldLocks) throws(ApplyRefusal) {
    guard request.targets.isEmpty && request.excludes.isEmpty else {
      throw ApplyRefusal([
        .error(
          "records.no-key", "this machine has no key for project \(context.project), and a key is only made by an apply of the whole project",
          subject: "project \(context.project)", hint: "apply without --target/--exclude once, or import the key (drover key import)")
      ])
    }
    do {
      if held.project == nil { held.project = try projectLock(context, timeout: request.lockTimeout) }
      let key = try ProjectKeyStore.store(RecordKey.generate(project: context.project), stateDirectory: context.stateDirectory, keepExisting: true)
      context.keyring.set(key)
      context.say(.keyCreated(key, path: ProjectKeyStore.path(in: context.stateDirectory)))
    } catch {
      throw ApplyRefusal(Diagnostic.list(of: error, code: "key.write"))
    }
  }

  /// The project-wide lock (beside the per-pool ones): held to create or import the key, to
  /// adopt a node and to prune, so two of those never interleave on one machine.
  public static func projectLock(_ context: RunContext, timeout: Double) throws -> PoolLock {
    try PoolLock.acquire(pool: "_project", directory: context.stateDirectory + "/locks", command: context.lockCommand, timeout: timeout, state: context.state)
  }
}

/// The locks a job holds, released when it ends (pools first, then the project's).
struct HeldLocks {
  var pools: [PoolLock] = []
  var project: PoolLock?

  mutating func release() {
    pools.removeAll()
    project = nil
  }

  /// The fence over all of them.
  var fence: Fence { Fence(pools + (project.map { [$0] } ?? [])) }
}

/// What the pools' journals say, read once: the rollout in progress of each pool, and the ids of
/// the rollouts that ended. A journal that cannot be opened is an error: planning without it
/// could touch the nodes of a rollout in progress.
public enum JournaledRollouts {
  public static func read(
    pools: [PoolSpec], stateDirectory: String, keyring: Keyring, state: StateStore, damaged: (String) -> Void
  ) throws -> (active: [String: RolloutState], finished: Set<String>) {
    var active: [String: RolloutState] = [:]
    var finished: Set<String> = []
    for pool in pools {
      let journal = try RolloutJournal(directory: stateDirectory + "/journal", pool: pool.name, keyring: keyring, state: state)
      if let damage = journal.damage { damaged(damage) }
      let rollouts = try journal.checkedRollouts()
      if let state = rollouts.last(where: { $0.isActive }) { active[pool.name] = state }
      finished.formUnion(rollouts.filter { !$0.isActive }.map(\.id))
    }
    return (active, finished)
  }
}
