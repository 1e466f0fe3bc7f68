import DroverBasics
import DroverModel
import DroverRollout

/// Whether a rollout in progress may be resumed (or rolled back) as journaled. Owns: checking a
/// journaled rollout's nodes against what is true now. Must not: act.
///
/// Why: a journal says what a rollout set out to do, but only the verified node records say what
/// each node is. A resume replaces a node only when the domain it would remove is the verified
/// node of that index the journal names (or that index's replacement the rollout already made,
/// or none: it was removed mid-step), when the new record follows from the old one the way the
/// rollout's kind allows (an upgrade: the rollout's image, the next generation; a heal: the same
/// build and resources, the next generation), and never on a protected pool or node.
public func resumeProblems(_ state: RolloutState, pool: PoolSpec, owned: [(host: String, domain: ObservedDomain, ownership: NodeOwnership)]) -> [Diagnostic] {
  var problems: [Diagnostic] = []
  let byIndex = Dictionary(grouping: owned.filter { $0.domain.trust == .verified && $0.ownership.pool == pool.name }, by: \.ownership.index)
  func refuse(_ node: String, _ why: String, hint: String) {
    problems.append(
      .error(
        "rollout.resume-refused", "rollout \(Terminal.printable(state.id)) of pool \(pool.name) cannot go on for node \(Terminal.printable(node)): \(why)",
        subject: "pool \(pool.name)", hint: hint))
  }
  let abort = "drover rollout abort \(pool.name), or move the journal aside if nobody started this rollout"
  for key in state.schedule.joined() where !state.done.contains(key) {
    guard let n = state.nodes[key] else { continue }
    if pool.protect && !(state.kind == .heal && pool.remediation?.remediateProtected == true) {
      refuse(key, "pool \(pool.name) is protected, and the rollout would replace it", hint: "set protect: false in the pool to let it finish, or \(abort)")
      continue
    }
    if n.from.protect {
      refuse(key, "its record says protect: true, and the rollout would replace it", hint: "the stricter of the spec and the record wins; \(abort)")
      continue
    }
    guard n.from.pool == pool.name, n.to.pool == pool.name, n.from.index == n.index, n.to.index == n.index, n.to.generation == n.from.generation + 1 else {
      refuse(key, "its journaled records are not one node's next generation", hint: abort)
      continue
    }
    let follows: Bool
    switch state.kind {
    case .heal:
      follows = n.to.image == n.from.image && n.to.digest == n.from.digest && n.to.vcpu == n.from.vcpu && n.to.memoryMiB == n.from.memoryMiB
    case .upgrade:
      follows = n.to.image == state.toImage
    }
    guard follows else {
      refuse(key, "its new record does not follow from the old one for a \(state.kind.rawValue)", hint: abort)
      continue
    }
    // The domain the journal says it replaces is that index's verified node, or the rollout's own
    // replacement, or gone (removed before its replacement was made); once the rollout rolls
    // back, also the rollback's own rebuild (the next generation, on the old image, its sealed
    // record marked by this rollout's rollback, or unmarked while it is still rolling back) — a
    // crash, or a stop that paused the rollback, after it was made leaves it there.
    func rollbacksOwn(_ o: NodeOwnership) -> Bool {
      // Its mark, or (the marks are cleared just before the rollout ends) a rollout rolling back.
      let marked = o.rollout?.id == state.id && o.rollout?.phase == "rollback"
      return o.generation == n.to.generation + 1 && o.image == n.from.image && (marked || state.status == .rollingBack)
    }
    for entry in byIndex[n.index] ?? []
    where entry.domain.uuid != n.oldUUID && entry.ownership.generation != n.to.generation && !rollbacksOwn(entry.ownership) {
      refuse(
        key, "the journal names domain \(n.oldUUID) as the node it replaces, but index \(n.index) is \(entry.domain.name) (\(entry.domain.uuid)) on \(entry.host)",
        hint: abort)
    }
  }
  return problems
}
