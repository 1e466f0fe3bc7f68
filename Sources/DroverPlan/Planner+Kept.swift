import DroverBasics
import DroverModel
import Foundation

/// Kept nodes in the plan (#45): a rollout's replaced nodes, shut off with their disks for a warm
/// rollback. They are never replicas (`planPool` sees serving nodes only); this file decides when
/// they go, each delete with its reason:
/// - their time (`keep_previous.for`) has passed (the next `apply`, `heal` or `watch` pass);
/// - `drover rollout finish` (the plan holds nothing else);
/// - the pool rolls again (a new rollout never mixes with the previous one's kept nodes);
/// - the pool scaled below their index;
/// - the plan needs their room: a pool's nodes that do not fit otherwise take the vCPU and memory
///   kept nodes reserve on its hosts (never a protected one's, never one of a rollout in progress).
/// Pure, as the rest of the planner.

/// Plans one pool (`planPool`) and, when its nodes do not fit, plans it again with the room kept
/// nodes on its hosts reserve; the kept nodes that gives back are deleted. `reclaimed` collects
/// every kept node the plan deletes, so none is deleted twice.
func planPoolReclaiming(
  _ pool: PoolSpec, existing: [OwnedNode], kept: [String: [OwnedNode]], observed: ObservedWorld, options: PlanOptions, generations: [Int: Int],
  rolling: [String: Set<Int>], refused: Set<String>, ledger: inout CapacityLedger, diagnostics: inout [Diagnostic], reclaimed: inout Set<String>
) -> [PlannedAction] {
  let start = diagnostics.count
  let before = ledger
  func plan(_ ledger: inout CapacityLedger, _ diagnostics: inout [Diagnostic]) -> [PlannedAction] {
    planPool(
      pool, existing: existing, kept: (kept[pool.name] ?? []).filter { !reclaimed.contains($0.domain.uuid) }, observed: observed, options: options,
      generations: generations, rolling: rolling[pool.name] ?? [], refused: refused, ledger: &ledger, diagnostics: &diagnostics)
  }
  var actions = plan(&ledger, &diagnostics)
  func short(_ list: [Diagnostic]) -> Bool { list[start...].contains { $0.code == "plan.capacity" } }
  if short(diagnostics) {
    let deleting = Set(actions.compactMap(\.uuid))
    let candidates = kept.values.joined().filter { k in
      pool.hosts.contains(k.host) && k.ownership.kept?.reserves == true && !k.ownership.protect
        && !(rolling[k.ownership.pool]?.contains(k.ownership.index) ?? false) && !reclaimed.contains(k.domain.uuid) && !deleting.contains(k.domain.uuid)
    }.sorted { ($0.ownership.pool, $0.ownership.index) < ($1.ownership.pool, $1.ownership.index) }
    if !candidates.isEmpty {
      var freed = before
      for k in candidates { freed.release(Demand(k.ownership).cpuAndMemory, on: k.host) }
      var retried = Array(diagnostics[..<start])
      let retry = plan(&freed, &retried)
      if !short(retried) {
        ledger = freed
        diagnostics = retried
        actions =
          candidates.map {
            keptDelete($0, "the plan needs its room: pool \(pool.name)'s nodes do not fit on \($0.host) beside the vCPU and memory it reserves")
          } + retry
      }
    }
  }
  reclaimed.formUnion(actions.filter { $0.kind == .delete && $0.before?.kept != nil }.compactMap(\.uuid))
  return actions
}

/// The deletes of a pool's own kept nodes that go now, before anything of the pool is placed
/// (their room is given back to the ledger at once); `replacing`: the pool rolls again.
func keptDeletes(_ kept: [OwnedNode], pool: PoolSpec, options: PlanOptions, rolling: Set<Int>, replacing: Bool) -> [PlannedAction] {
  kept.sorted { ($0.ownership.index, $0.host) < ($1.ownership.index, $1.host) }.compactMap { k in
    guard let keeping = k.ownership.kept, !rolling.contains(k.ownership.index) else { return nil }
    if options.finishKept { return keptDelete(k, "drover rollout finish: rollout \(keeping.rollout) is not rolled back any more") }
    if replacing { return keptDelete(k, "pool \(pool.name) rolls again: the nodes rollout \(keeping.rollout) kept go first") }
    if keeping.until <= options.now { return keptDelete(k, "kept by rollout \(keeping.rollout) until \(KeptTime.text(keeping.until)): its time has passed") }
    if k.ownership.index > pool.replicas { return keptDelete(k, "scale down to \(pool.replicas) (kept node of index \(k.ownership.index))") }
    return nil
  }
}

func keptDelete(_ k: OwnedNode, _ reason: String) -> PlannedAction {
  PlannedAction(kind: .delete, pool: k.ownership.pool, node: k.domain.name, host: k.host, reason: "kept node: " + reason, uuid: k.domain.uuid, before: k.ownership)
}

/// The kept nodes a plan leaves, for people and `plan --json`.
func keptEntries(_ kept: [String: [OwnedNode]], deleted: Set<String>) -> [KeptEntry] {
  kept.values.joined().filter { !deleted.contains($0.domain.uuid) }.compactMap { k in
    k.ownership.kept.map {
      KeptEntry(pool: k.ownership.pool, node: k.domain.name, host: k.host, image: k.ownership.image, rollout: $0.rollout, until: $0.until, reserves: $0.reserves)
    }
  }.sorted { ($0.pool, $0.node, $0.host) < ($1.pool, $1.node, $1.host) }
}

/// How a kept node's time is written: UTC, to the minute.
public enum KeptTime {
  public static func text(_ epoch: Double) -> String { TimeText.local(epoch, "UTC") }
}

extension Demand {
  /// The part a stopped domain holds on its host: vCPU and memory (its disk stays either way).
  var cpuAndMemory: Demand { Demand(vcpu: vcpu, memory: memory) }
}

extension CapacityLedger {
  /// Gives back what a domain that goes held (`demand`) on `uri`.
  mutating func release(_ demand: Demand, on uri: String) {
    guard var room = rooms[uri] else { return }
    room.committed = Demand(
      vcpu: max(0, room.committed.vcpu - demand.vcpu), memory: max(0, room.committed.memory - demand.memory), disk: room.committed.disk)
    rooms[uri] = room
  }
}
