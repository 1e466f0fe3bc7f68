/// Whether `drover rollout undo` may roll a completed rollout back (#45). Owns: the rule that an
/// undo puts back only what the rollout itself changed. Must not: read a host or a journal.
///
/// Why refuse rather than roll back what is left: a pool scaled down or re-rolled since the
/// rollout no longer holds the nodes it replaced. Rolling those back would rebuild nodes the spec
/// removed, or replace nodes a later change made — an undo that makes the fleet differ from both
/// the spec and what the rollout found. Setting the image back in the spec is the way then.

/// The nodes of `state` that no longer serve as the rollout left them, each with why; empty: the
/// undo may go ahead. `serving` is the generations of the pool's serving domains by index.
public func undoBlockers(_ state: RolloutState, serving: [Int: [Int]]) -> [String] {
  state.nodes.values.sorted { $0.index < $1.index }.compactMap { node in
    let now = serving[node.index] ?? []
    if now == [node.to.generation] { return nil }
    if now.isEmpty { return "\(node.key) is gone (scaled down or removed since)" }
    return "\(node.key) was changed since (generation \(now.sorted().map(String.init).joined(separator: ", ")), the rollout left \(node.to.generation))"
  }
}
