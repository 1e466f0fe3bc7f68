import DroverModel

/// What one node of a rollout does next, decided from the domains of its index as they are now
/// and what this attempt has already seen — the way Cluster API's reconcilers decide a machine's
/// next step. `RolloutRunner` only acts on it: decide → act → journal → decide again.
///
/// Why a function and not a procedure: after a crash at any step boundary the world says how far
/// the node got (which domains of its index exist), the attempt starts empty, and the same rules
/// find the same next step; every rule here is tested as a table and as whole sequences.
public enum NodeStep: Sendable, Hashable {
  /// Take the domain out of scheduling. `mayFail`: a heal's sick node is replaced even when its
  /// cordon fails (a hook that reaches into a dead node must not keep it dead).
  case cordon(IndexDomain, mayFail: Bool)
  /// Move the domain's work away (see `DrainOrder`).
  case drain(IndexDomain, DrainOrder)
  /// Define and start the replacement: its record (name, generation, image) decided here, on
  /// `host`; `exactBuild`: only the very build the record names may back its disk (a heal
  /// rebuilds a node as it was).
  case create(NodeOwnership, host: String, exactBuild: Bool)
  /// Wait for the domain's health checks.
  case health(IndexDomain)
  /// Stop, undefine and delete the domain and its overlay.
  case remove(IndexDomain, RemovalKind)
  /// Shut the replaced domain off and keep it, disk and all, as a kept node (#45): a rollback
  /// starts it again instead of rebuilding it.
  case keep(IndexDomain)
  /// Start a kept domain on its own disk and make it serve again (a warm rollback).
  case revive(IndexDomain)
  /// Seal into the domain's record that it failed its health checks (it stays: the old one is
  /// gone; plan replaces it later), then fail with `reason`.
  case recordHealthFailure(IndexDomain, reason: String)
  /// Put the domain back in scheduling. `bestEffort`: a node that failed goes back without a
  /// journaled step, and an error there changes nothing.
  case uncordon(IndexDomain, bestEffort: Bool)
  /// The node is replaced and healthy (or, in a rollback, back as it was).
  case done
  /// The node failed; the reason is journaled and counts against the budget.
  case failed(String)
}

/// How a drain runs.
public enum DrainOrder: Sendable, Hashable {
  /// The pool's drain: within `timeoutSeconds`; a timeout fails the node when `failOnTimeout`.
  case graceful(timeoutSeconds: Double, failOnTimeout: Bool)
  /// A heal's node that stopped beating: at most `seconds`, replaced whatever it reports.
  case forced(seconds: Double, reason: String)
  /// A heal's node libvirt reports dead: nothing runs to drain (journaled as skipped).
  case skip(reason: String)
}

/// Which removal a `remove` step is (its journal name says which).
public enum RemovalKind: String, Sendable, Hashable {
  /// The node being replaced, once its replacement may take over.
  case old = "remove-old"
  /// A replacement that failed its health checks (with surge: the old node still serves).
  case failed = "remove-failed"
  /// A rollback's extra domain beside the original that is kept.
  case replacement = "remove-replacement"
}

/// What this attempt at a node has seen so far (empty when it starts, also after a crash: the
/// domains of the index carry everything that outlives a process).
public struct NodeAttempt: Sendable, Hashable {
  public enum Drain: Sendable, Hashable {
    /// Drained, skipped or forced: the node may be removed.
    case finished
    case timedOut
  }
  public enum Health: Sendable, Hashable {
    case healthy
    case unhealthy(String)
  }
  public var cordoned = false
  public var drain: Drain?
  /// What held a drain that timed out (the pods, the jobs), when the back-end could say.
  public var drainCause: String?
  /// A create ran in this attempt (a replacement still missing afterwards is a failure, never a
  /// second create).
  public var created = false
  public var health: Health?
  /// The node being replaced was put back after a failure (best effort, once).
  public var oldUncordoned = false
  public var uncordoned = false
  public var healthFailureRecorded = false
  /// A kept domain was started again in this attempt (a second start is never tried).
  public var revived = false
  /// Steps this attempt has taken: "untouched" is judged before the first.
  public var steps = 0

  public init() {}
}

/// The drain settings a rollout's node steps use (the pool's `drain:`).
public struct NodeDrainPolicy: Sendable, Hashable {
  public var timeoutSeconds: Double
  public var onTimeout: DrainSpec.OnTimeout
  public var onFailure: DrainSpec.OnFailure
  public var timeoutText: String

  public init(_ spec: DrainSpec) {
    timeoutSeconds = spec.timeout.seconds
    onTimeout = spec.onTimeout
    onFailure = spec.onFailure
    timeoutText = "\(spec.timeout)"
  }
}

/// Everything the next step of one node is decided from: plain values.
public struct NodeStepInput: Sendable, Hashable {
  public var node: RolloutNode
  /// The owned domains of the node's index, on every host of the rollout, as observed now.
  public var domains: [IndexDomain]
  public var rollback: Bool
  public var surge: Bool
  /// A heal's rollout: its nodes' `heal` drain applies, and replacements are exact builds.
  public var healing: Bool
  public var drain: NodeDrainPolicy
  /// Keep the replaced domain (shut off) instead of deleting it (`RolloutNode.keep`).
  public var keep: Bool
  /// The hosts this run has a connection to: a node whose replacement would go elsewhere fails
  /// before anything is touched.
  public var connected: Set<String>
  public var attempt: NodeAttempt

  public init(
    node: RolloutNode, domains: [IndexDomain], rollback: Bool, surge: Bool, healing: Bool, drain: NodeDrainPolicy, connected: Set<String>,
    attempt: NodeAttempt = NodeAttempt(), keep: Bool? = nil
  ) {
    // A rollback removes what the rollout made: the node it goes back from is never kept.
    self.keep = keep ?? (node.keep == true && !healing && !rollback)
    self.node = node
    self.domains = domains
    self.rollback = rollback
    self.surge = surge
    self.healing = healing
    self.drain = drain
    self.connected = connected
    self.attempt = attempt
  }
}

/// Decides the next step of one node of a rollout (forward to its planned record, or back to the
/// one it had). Pure.
///
/// In place (no surge): cordon → drain → remove the old node → create → health → uncordon; a
/// replacement that fails its health checks stays, its record marked failed. With surge: the
/// replacement first; once it is healthy the old node is cordoned, drained (here for a move to
/// another host, before the create otherwise) and removed; a failed replacement is removed and
/// the old node put back. Which domains are "old" and "new" is `replacementView`'s decision.
public func nextNodeStep(_ input: NodeStepInput) -> NodeStep {
  let node = input.node
  let attempt = input.attempt
  let view = replacementView(node, domains: input.domains, rollback: input.rollback, surge: input.surge)
  // Nothing to do is judged once, before this attempt acts (a rollback that has just removed the
  // extra domain beside the original still puts the original back).
  if view.untouched && attempt.steps == 0 { return .done }
  let old = view.old
  let target = view.new
  // New domains go to the node's target host (its own, or the one it moves to); an existing one
  // is acted on where it is.
  let host = target?.host ?? node.targetHost
  guard input.connected.contains(host) else { return .failed("no connection to \(host)") }
  // A move with surge makes the new node first, on the other host, and takes the old one out of
  // service only once it is healthy.
  let movingFirst = input.surge && old.map { $0.host != host } == true
  // A heal's drain (skipped, forced) is for the sick node it replaces; rolling a heal back drains
  // the healthy rebuild gracefully, as any node.
  let heal = input.healing && !input.rollback ? node.heal : nil

  /// Cordon and drain `old`, or nil once both are behind it (or the drain failed the node).
  func drainPhase(_ old: IndexDomain) -> NodeStep? {
    if !attempt.cordoned { return .cordon(old, mayFail: heal != nil) }
    guard let drained = attempt.drain else {
      switch heal {
      case .skip(let reason): return .drain(old, .skip(reason: reason))
      case .force(let seconds, let reason): return .drain(old, .forced(seconds: min(seconds, input.drain.timeoutSeconds), reason: reason))
      case nil: return .drain(old, .graceful(timeoutSeconds: input.drain.timeoutSeconds, failOnTimeout: input.drain.onTimeout == .fail))
      }
    }
    if drained == .timedOut && input.drain.onTimeout == .fail {
      if input.drain.onFailure == .uncordon && !attempt.oldUncordoned { return .uncordon(old, bestEffort: true) }
      return .failed("drain of \(old.name) timed out after \(input.drain.timeoutText) (on_timeout: fail)" + (attempt.drainCause.map { ": \($0)" } ?? ""))
    }
    return nil
  }

  if input.rollback, let original = view.new, original.uuid == node.oldUUID {
    return rollbackKeepingOriginal(original, extra: view.old, attempt: attempt, drainPhase: drainPhase)
  }

  func createOrFail() -> NodeStep {
    if attempt.created { return .failed("the new node did not appear") }
    return .create(view.target, host: host, exactBuild: input.healing)
  }

  if input.surge {
    if let old, !movingFirst, let step = drainPhase(old) { return step }
    if case .unhealthy(let reason) = attempt.health {
      if let target { return .remove(target, .failed) }
      if let old, !movingFirst, input.drain.onFailure == .uncordon, !attempt.oldUncordoned { return .uncordon(old, bestEffort: true) }
      return .failed(reason)
    }
    guard let target else { return createOrFail() }
    if attempt.health == nil { return .health(target) }
    if let old, movingFirst, let step = drainPhase(old) { return step }
    if let old { return input.keep ? .keep(old) : .remove(old, .old) }
    return attempt.uncordoned ? .done : .uncordon(target, bestEffort: false)
  }
  if let old {
    if let step = drainPhase(old) { return step }
    return input.keep ? .keep(old) : .remove(old, .old)
  }
  if case .unhealthy(let reason) = attempt.health {
    if let target, !attempt.healthFailureRecorded { return .recordHealthFailure(target, reason: reason) }
    return .failed(reason)
  }
  guard let target else { return createOrFail() }
  if attempt.health == nil { return .health(target) }
  return attempt.uncordoned ? .done : .uncordon(target, bestEffort: false)
}

/// A rollback of a node whose original domain is still there: it stays, whatever was made beside
/// it goes. A kept original (#45) is started on its own disk, health-checked and put back in
/// service before its replacement is drained and removed; one that does not come back healthy
/// is shut off and kept again, and its replacement serves on.
func rollbackKeepingOriginal(_ original: IndexDomain, extra: IndexDomain?, attempt: NodeAttempt, drainPhase: (IndexDomain) -> NodeStep?) -> NodeStep {
  if case .unhealthy(let reason) = attempt.health {
    if !original.kept && extra != nil { return .keep(original) }
    return .failed("kept node \(original.name) did not come back healthy: \(reason)" + (extra.map { "; it is kept again and \($0.name) serves on" } ?? ""))
  }
  if original.kept { return attempt.revived ? .failed("kept node \(original.name) did not start") : .revive(original) }
  if original.revived {
    if attempt.health == nil { return .health(original) }
    if !attempt.uncordoned { return .uncordon(original, bestEffort: false) }
    guard let extra else { return .done }
    if let step = drainPhase(extra) { return step }
    return .remove(extra, .replacement)
  }
  if let extra { return .remove(extra, .replacement) }
  return attempt.uncordoned ? .done : .uncordon(original, bestEffort: false)
}
