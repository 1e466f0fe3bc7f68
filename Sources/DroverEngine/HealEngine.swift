import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation

/// One heal pass's reading and deciding: heartbeats, the heal ledger and each pool's journal in,
/// a `HealPass` out (`makeHealPass` decides; this only gathers). The replacements it decides run
/// through `ApplyEngine` like any plan's rollouts, journaled as kind heal.
public struct HealEngine: Sendable {
  let pools: [PoolSpec]
  let project: String
  let stateDirectory: String
  let backends: [String: any HostBackend]
  let consoleLog: @Sendable (String) -> String?
  let ssh: NodeSSHAccess?
  let keyring: Keyring?
  let state: StateStore
  /// Where a pool's error budget (`error_budget.slo`) is read before `replace` may run (#44).
  let metrics: (any MetricsQuerying)?

  public init(
    pools: [PoolSpec], project: String, stateDirectory: String, backends: [String: any HostBackend], consoleLog: @escaping @Sendable (String) -> String?,
    ssh: NodeSSHAccess?, keyring: Keyring?, state: StateStore, metrics: (any MetricsQuerying)? = nil
  ) {
    self.metrics = metrics
    self.keyring = keyring
    self.state = state
    self.pools = pools
    self.project = project
    self.stateDirectory = stateDirectory
    self.backends = backends
    self.consoleLog = consoleLog
    self.ssh = ssh
  }

  var journalDirectory: String { stateDirectory + "/journal" }

  /// Decides a pass over `observed` at `now`; `remember` writes what it learnt to the ledger
  /// (not on `--dry-run`). Only pools with `remediation:` are judged.
  public func decide(
    observed: ObservedWorld, now: Double, remember: Bool, outageThresholds: [String: Double] = [:], fence: Fence = .none
  ) throws -> HealPass {
    let healed = pools.filter { $0.remediation != nil }
    let ledger = try HealLedger.configured(stateDirectory: stateDirectory, keyring: keyring, state: state)
    var memory: [String: [String: NodeMemory]] = [:]
    var active: [String: RolloutState] = [:]
    var lastHeal: [String: Double] = [:]
    var history: [String: [Double]] = [:]
    for pool in healed {
      memory[pool.name] = try ledger.read(pool: pool.name, now: now)
      let journal = try RolloutJournal(directory: journalDirectory, pool: pool.name, keyring: keyring, state: state)
      let rollouts = try journal.checkedRollouts()
      if let state = rollouts.last(where: { $0.isActive }) { active[pool.name] = state }
      lastHeal[pool.name] = rollouts.filter { $0.kind == .heal }.compactMap(\.ended).max()
      history[pool.name] = rollouts.flatMap { $0.nodeSeconds.values }
    }
    let candidates = healCandidates(healed, observed: observed, project: project)
    let signals = HeartbeatReader.read(pools: healed, candidates: candidates, backends: backends, consoleLog: consoleLog, ssh: ssh)
    var inputs = HealInputs(
      pools: pools, observed: observed, project: project, signals: signals, memory: memory, active: active, lastHealEnded: lastHeal, now: now,
      outageThreshold: { outageThresholds[$0] ?? HostEntry.defaultOutageThreshold }, replaceHistory: history)
    var (pass, learnt) = makeHealPass(inputs)
    // The error budget is read only for a pool this pass would replace in (a pass over healthy
    // nodes asks Prometheus nothing): while it burns, or nobody can read it, `replace` is held and
    // the pass decided again — never a repair on a node's own disk.
    let replacing = Set(pass.decisions.filter { !$0.replace.isEmpty }.map(\.pool))
    for pool in healed where replacing.contains(pool.name) {
      guard let gate = pool.burnRate else { continue }
      let decision = metrics.map { BurnMeter(metrics: $0).decide(gate) } ?? .wait("no Prometheus is configured to read the error budget's burn rate")
      if case .wait(let why) = decision { inputs.burnHolds[pool.name] = why }
    }
    if !inputs.burnHolds.isEmpty { (pass, learnt) = makeHealPass(inputs) }
    if remember {
      // The ledger records the rungs this pass is about to try: written only by a pass that still
      // holds its locks (and, under watch, the lead), or the next leader would skip a rung never run.
      if !learnt.isEmpty { try fence.check("recording the pass in the heal ledger") }
      for (pool, nodes) in learnt { try ledger.write(pool: pool, nodes, now: now) }
    }
    return pass
  }

  /// Nodes replaced by heals of `pool`, from its journal: each node counted once per heal,
  /// however often that heal was resumed.
  public static func remediations(stateDirectory: String, pool: String, keyring: Keyring?, state: StateStore) -> Int {
    guard let journal = try? RolloutJournal(directory: stateDirectory + "/journal", pool: pool, keyring: keyring, state: state) else { return 0 }
    return journal.rollouts().filter { $0.kind == .heal }.map(\.done.count).reduce(0, +)
  }

  /// The heal rollouts of `pool`, oldest first (for the history and stale-plan notes).
  public static func heals(stateDirectory: String, pool: String, keyring: Keyring?, state: StateStore) -> [RolloutState] {
    guard let journal = try? RolloutJournal(directory: stateDirectory + "/journal", pool: pool, keyring: keyring, state: state) else { return [] }
    return journal.rollouts().filter { $0.kind == .heal }
  }
}
