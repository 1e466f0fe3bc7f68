import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation

/// What one heal pass is asked to do.
public struct HealRequest: Sendable {
  /// Judge and say, change nothing (the ledger is not written either).
  public var dryRun: Bool
  /// How long to wait for a pool's lock another process holds (then the pool is skipped).
  public var lockTimeout: Double
  /// Per host: the share of its nodes that must be down at once for heal to call it an outage.
  public var outageThresholds: [String: Double]
  /// Where a node's console log is.
  public var consoleLog: @Sendable (String) -> String?
  /// How nodes are reached over SSH (ssh heartbeats); nil: not at all.
  public var ssh: NodeSSHAccess?
  /// Under `watch`: the lead this pass acts under, proved with its pool locks before every
  /// action (a leader deposed mid-pass stops there).
  public var leadership: Fence? = nil
  /// Where the pools' error budgets are read before `replace` may run (#44); nil: none named.
  public var metrics: (any MetricsQuerying)? = nil

  public init(
    dryRun: Bool = false, lockTimeout: Double = 0, outageThresholds: [String: Double] = [:], consoleLog: @escaping @Sendable (String) -> String? = { _ in nil },
    ssh: NodeSSHAccess? = nil
  ) {
    self.dryRun = dryRun
    self.lockTimeout = lockTimeout
    self.outageThresholds = outageThresholds
    self.consoleLog = consoleLog
    self.ssh = ssh
  }
}

/// What a heal pass did: its decisions, the repairs on nodes' own disks, the replacements run,
/// its exit status and whether it could read everything it needed.
public struct HealJobOutcome: Sendable {
  /// Nil when no pool declares `remediation:` (nothing to heal).
  public var pass: HealPass?
  public var repairs: [HealRepairRunner.Outcome] = []
  public var replaced: ApplyOutcome?
  /// 0 all healthy; 2 unhealthy nodes left; 3 a remediation failed; 130 interrupted.
  public var status: Int32 = 0
  /// Nodes whose repair or replacement did not finish (they stay unhealthy in the metrics).
  public var failed: Set<String> = []
  /// A pool's lock could not be asked for (its state database down).
  public var unreadState = false
  /// A host could not be read.
  public var unreadHost = false
  /// What failed after the pass had decided (the replacements could not start); said by the
  /// command, the pass goes on to its metrics.
  public var errors: [Diagnostic] = []

  /// A pass that could not read its state or a host (`watch` counts them in a row).
  public var passFailed: Bool { unreadState || unreadHost }
}

/// One heal pass (#34: an engine entry point over a run context, like `ApplyJob`): lock the
/// pools with `remediation:` (a pool another process holds is skipped), observe, decide
/// (`HealEngine`), repair on the nodes' own disks, run the decided replacements through the
/// apply engine. The command renders what it says and writes the metrics.
public enum HealJob {
  public static func run(
    _ request: HealRequest, in context: RunContext, engine: (RunContext) throws(Diagnostic) -> ApplyEngine, decided: (HealPass) -> Void,
    repaired: ([HealRepairRunner.Outcome]) -> Void, replaced: (ApplyOutcome) -> Void
  ) throws(Diagnostic) -> HealJobOutcome {
    var outcome = HealJobOutcome()
    let healed = context.pools.filter { $0.remediation != nil }.map(\.name).sorted()
    guard !healed.isEmpty else { return outcome }
    // Only records sealed with the project key are nodes a heal may judge and replace: without
    // the key every node would look like no node at all, and "all healthy" would be a lie.
    guard context.keyring.key != nil else {
      throw .error(
        "records.no-key", "this machine has no key for project \(context.project): heal cannot verify which domains are its nodes",
        subject: "project \(context.project)", hint: "import the key (drover key import, or DROVER_PROJECT_KEY)")
    }
    var locks: [PoolLock] = []
    var skipped: [String: String] = [:]
    for pool in healed {
      do {
        locks.append(
          try PoolLock.acquire(
            pool: pool, directory: context.stateDirectory + "/locks", command: context.lockCommand, timeout: request.lockTimeout, state: context.state))
      } catch {
        let diagnostic = Diagnostic.first(of: error, code: "apply.lock")
        skipped[pool] = diagnostic.message
        // Held by another process is a pass's normal business; a lock that could not be asked
        // for (the state database down) is a pass that could not read its state.
        if diagnostic.code != "apply.lock-held" { outcome.unreadState = true }
      }
    }
    defer { locks.removeAll() }
    // One fence for the whole pass: once lost (at the ledger, a repair, a replacement), every later
    // action of the pass stops without asking again.
    let fence = Fence(locks, also: request.leadership)
    let asRead = context.observeAsRead()
    outcome.unreadHost = !asRead.unreachable.isEmpty
    let observed = ProjectHosts.withoutAliases(asRead, declared: context.declaredHosts)
    let healEngine = HealEngine(
      pools: context.pools.filter { skipped[$0.name] == nil }, project: context.project, stateDirectory: context.stateDirectory,
      backends: context.backends, consoleLog: request.consoleLog, ssh: request.ssh, keyring: context.keyring, state: context.state, metrics: request.metrics)
    var pass: HealPass
    do {
      pass = try healEngine.decide(
        observed: observed, now: context.clock.now().timeIntervalSince1970, remember: !request.dryRun, outageThresholds: request.outageThresholds,
        fence: fence)
    } catch {
      throw Diagnostic.first(of: error, code: "heal")
    }
    for (pool, why) in skipped.sorted(by: { $0.key < $1.key }) {
      pass.decisions.append(PoolHealDecision(pool: pool, verdict: .skipped(reason: why), replace: [], left: [], unknown: [], why: "skipped: \(why)"))
    }
    outcome.pass = pass
    decided(pass)
    // A dry run did nothing: any unhealthy node is still there.
    outcome.status = request.dryRun ? (pass.nodes.contains { $0.condition == "unhealthy" } ? 2 : 0) : pass.exitStatusIfDone
    guard !request.dryRun else { return outcome }
    if !pass.repairs.isEmpty {
      // The repairs on the nodes' own disks, as decided (their attempts are in the ledger already).
      outcome.repairs = HealRepairRunner.run(pass.repairs, backends: context.backends, fence: fence)
      repaired(outcome.repairs)
      for repair in outcome.repairs where repair.failure != nil { outcome.failed.insert(repair.repair.key) }
      if outcome.repairs.contains(where: { $0.failure != nil }) { outcome.status = 3 }
    }
    if !pass.plan.rollouts.isEmpty {
      // The replacements heal decided, run as decided (the pass holds the pools' locks).
      let applied: ApplyOutcome
      do {
        var built = try engine(context)
        built.hooks.fence = fence
        applied = ApplyJob.execute(pass.plan, engine: built)
      } catch {
        outcome.status = 3
        outcome.errors.append(error)
        for preview in pass.plan.rollouts { outcome.failed.formUnion(preview.nodes.map(\.key)) }
        return outcome
      }
      outcome.replaced = applied
      replaced(applied)
      if applied.exitStatus != 0 {
        outcome.status = applied.exitStatus == 130 ? 130 : 3
        // Which heals did not finish: their nodes stay unhealthy in the metrics.
        for preview in pass.plan.rollouts {
          let state = HealEngine.heals(stateDirectory: context.stateDirectory, pool: preview.pool, keyring: context.keyring, state: context.state).last
          for key in preview.nodes.map(\.key) where state?.done.contains(key) != true { outcome.failed.insert(key) }
        }
      }
    }
    return outcome
  }
}
