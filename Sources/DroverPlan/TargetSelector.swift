import DroverBasics
import DroverModel

/// What `--target`, `--exclude` and `--replace` may name, and whether an action is selected.
///
/// One selector for planning, locking and diagnostics: `POOL`, `NODE` (the index name `web-3`
/// or a domain's name `web-3-g2`) or `POOL/NODE`. A name that matches nothing is an error listing
/// what exists, never an empty plan.
public struct TargetSelector: Sendable {
  /// Node names of each pool (index names and domain names).
  let nodes: [String: Set<String>]

  public init(pools: [PoolSpec], owned: [(pool: String, name: String, index: Int)]) {
    var nodes: [String: Set<String>] = [:]
    for pool in pools {
      nodes[pool.name, default: []].formUnion(NodeName.all(pool: pool.name, replicas: pool.replicas))
    }
    for o in owned { nodes[o.pool, default: []].formUnion([o.name, NodeName.of(pool: o.pool, index: o.index)]) }
    self.nodes = nodes
  }

  /// The pool a selector names or whose node it names, or nil when it names nothing.
  public func pool(of selector: String) -> String? {
    if let slash = selector.firstIndex(of: "/") {
      let pool = String(selector[..<slash]), node = String(selector[selector.index(after: slash)...])
      return nodes[pool]?.contains(node) == true ? pool : nil
    }
    if nodes[selector] != nil { return selector }
    return nodes.first { $0.value.contains(selector) }?.key
  }

  /// Errors for selectors that name nothing (`option` is the flag they came from).
  public func unknown(_ selectors: [String], option: String, nodesOnly: Bool = false) -> [Diagnostic] {
    selectors.compactMap { s -> Diagnostic? in
      if let pool = pool(of: s), !(nodesOnly && pool == s) { return nil }
      let pools = nodes.keys.sorted()
      return .error(
        "plan.target", "--\(option) \(Terminal.printable(s)) names no \(nodesOnly ? "node" : "pool or node") of this project",
        subject: "--\(option) \(Terminal.printable(s))",
        hint: pools.isEmpty ? "this project has no pools" : "pools: \(pools.joined(separator: ", ")); nodes are named like \(pools[0])-1 or \(pools[0])/\(pools[0])-1")
    }
  }
}

/// Whether an action is in the slice the selectors choose (its pool, its domain name, its index
/// name, or either as `POOL/NODE`).
func selected(_ action: PlannedAction, targets: [String], excludes: [String]) -> Bool {
  var names = [action.pool, action.node, "\(action.pool)/\(action.node)"]
  if let index = action.before?.index ?? action.after?.ownership.index ?? OverlayName(volume: action.node)?.index {
    names += [NodeName.of(pool: action.pool, index: index), "\(action.pool)/" + NodeName.of(pool: action.pool, index: index)]
  }
  if excludes.contains(where: names.contains) { return false }
  return targets.isEmpty || targets.contains(where: names.contains)
}

/// The pool a selector is about, from the pool names alone (before anything is observed: the
/// locks are taken first): `POOL`, `POOL/NODE`, or a node name `POOL-N` / `POOL-N-gM`. Exact, so
/// `web-api` never selects pool `web`.
public func poolOfSelector(_ selector: String, pools: Set<String>) -> String? {
  if let slash = selector.firstIndex(of: "/") {
    let pool = String(selector[..<slash])
    return pools.contains(pool) ? pool : nil
  }
  if pools.contains(selector) { return selector }
  var name = Substring(selector)
  if let g = name.range(of: "-g", options: .backwards), !name[g.upperBound...].isEmpty, name[g.upperBound...].allSatisfy(\.isNumber) {
    name = name[..<g.lowerBound]
  }
  guard let dash = name.lastIndex(of: "-"), !name[name.index(after: dash)...].isEmpty, name[name.index(after: dash)...].allSatisfy(\.isNumber)
  else { return nil }
  let pool = String(name[..<dash])
  return pools.contains(pool) ? pool : nil
}
