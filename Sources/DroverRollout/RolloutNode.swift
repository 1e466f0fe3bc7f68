import DroverModel

/// One node of a rollout, decided when the plan is made and recorded in the journal: which domain
/// is replaced (by UUID), what it was, and what replaces it.
///
/// Why the UUID and generations and not the image: a `--replace`, a disk-size change or a repair
/// keeps the image, so "already on the target image" cannot tell old from new. The old domain is
/// the one with the planned UUID; the new one carries `to.generation`; a rollback's carries
/// `to.generation + 1`. After a crash at any step, the same rule finds the same domains.
public struct RolloutNode: Sendable, Hashable, Codable {
  /// The index name (`web-2`): the key of schedules and journal records.
  public var key: String
  public var index: Int
  public var host: String
  /// The domain being replaced, as planned.
  public var oldName: String
  public var oldUUID: String
  /// Its ownership record (the rollback target's shape).
  public var from: NodeOwnership
  /// The replacement's record (name, generation and image included).
  public var to: NodeOwnership
  /// Why it is replaced (for people).
  public var reason: String
  /// Where the replacement goes when it is not `host` (a move off a drained, cordoned or
  /// removed host); nil: the same host. A rollback of a move lands there too: the host it left
  /// is not one to go back to.
  public var toHost: String? = nil
  /// A heal's node: how its drain goes (nil: the pool's drain, as in an upgrade).
  public var heal: HealDrain? = nil
  /// Whether the domain being replaced is shut off and kept for a warm rollback instead of
  /// deleted (`upgrade.keep_previous`, decided by the plan; nil in older journals: deleted).
  public var keep: Bool? = nil

  /// The host the replacement (and a rollback's node) is created on.
  public var targetHost: String { toHost ?? host }

  public init(key: String, index: Int, host: String, oldName: String, oldUUID: String, from: NodeOwnership, to: NodeOwnership, reason: String) {
    self.key = key
    self.index = index
    self.host = host
    self.oldName = oldName
    self.oldUUID = oldUUID
    self.from = from
    self.to = to
    self.reason = reason
  }
}

/// How a heal drains a node it replaces, decided with the heal: a node libvirt reports dead
/// has nothing to drain (skipped: the scheduler side is still cordoned); one that runs but
/// stopped beating cannot drain itself gracefully (forced: the drain runs for at most
/// `seconds` and the node is replaced whatever it reports).
public enum HealDrain: Sendable, Hashable, Codable {
  case skip(reason: String)
  case force(seconds: Double, reason: String)
}

/// A domain of one node index as the runner sees it right now.
public struct IndexDomain: Sendable, Hashable {
  public var name: String
  public var uuid: String
  public var host: String
  public var generation: Int
  /// Shut off and kept for rollback (#45): never the node that serves.
  public var kept: Bool
  /// Started again from kept by this rollout's rollback: its health and uncordon come next.
  public var revived: Bool

  public init(name: String, uuid: String, host: String, generation: Int, kept: Bool = false, revived: Bool = false) {
    self.kept = kept
    self.revived = revived
    self.name = name
    self.uuid = uuid
    self.host = host
    self.generation = generation
  }
}

/// Which existing domains a node's replacement step acts on.
public struct ReplacementView: Sendable, Hashable {
  /// The domain to drain and remove (nil once it is gone).
  public var old: IndexDomain?
  /// The replacement, if it exists already (a resumed step does not create it twice).
  public var new: IndexDomain?
  /// What the replacement must be.
  public var target: NodeOwnership
  /// Nothing to do: a rollback of a node whose original was never removed.
  public var untouched: Bool
}

/// Decides, from the domains of one index, what a forward or rollback step of `node` acts on.
///
/// Pure. Forward: old = the planned UUID, new = generation `to.generation`, named
/// `replacementName` (or as the existing one is). Rollback: when the
/// original still exists, it is kept (new = the original, old = any replacement beside it; with
/// none, the node is untouched); otherwise old = the forward replacement, new = generation
/// `to.generation + 1`, built from the record the node had before the rollout.
public func replacementView(_ node: RolloutNode, domains: [IndexDomain], rollback: Bool, surge: Bool) -> ReplacementView {
  let original = domains.first { $0.uuid == node.oldUUID }
  let forward = domains.first { $0.generation == node.to.generation && $0.uuid != node.oldUUID }
  // Every name the index's domains hold now (a kept one included): a new domain takes another.
  let occupied = Set(domains.map(\.name))
  if !rollback {
    // The replacement's name is decided here, once: the one that exists already, else the
    // index's free name.
    var target = node.to
    target.node = forward?.name ?? replacementName(key: node.key, generation: target.generation, occupied: occupied)
    // A kept original is out of service already: nothing left to drain or remove.
    return ReplacementView(old: original?.kept == true ? nil : original, new: forward, target: target, untouched: false)
  }
  var target = node.from
  target.generation = node.to.generation + 1
  target.healthFailed = false
  target.kept = nil
  let back = domains.first { $0.generation == target.generation && $0.uuid != node.oldUUID }
  target.node = replacementName(key: node.key, generation: target.generation, occupied: occupied)
  if let back { target.node = back.name }
  if let original {
    // The original is still there (its replacement failed, a crash came first, or it was kept):
    // keeping it is the rollback; any replacement beside it goes. Nothing new is created.
    let extra = forward ?? back
    return ReplacementView(old: extra, new: original, target: target, untouched: extra == nil && !original.kept && !original.revived)
  }
  return ReplacementView(old: forward, new: back, target: target, untouched: false)
}

/// The name of a new domain of an index: the index name (`web-1`) while no domain of the index
/// holds it, else `web-1-g<generation>` — so old and new coexist with surge, and a kept node
/// never blocks the name its successor needs.
public func replacementName(key: String, generation: Int, occupied: Set<String>) -> String {
  occupied.contains(key) ? "\(key)-g\(generation)" : key
}
