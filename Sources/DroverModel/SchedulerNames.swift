/// The name a scheduler knows a node by, as a plan shows it (#42): the node a rollout cordons
/// and drains (the one being replaced) and the one it uncordons (its replacement), rendered from
/// `drain.node_name` over each side's `NodeVariables`. Pure; the drain renders the same template
/// at run time from the same records, so what the plan shows is what is drained.
public struct SchedulerNames: Sendable, Hashable, Codable {
  /// The node's index name (`web-1`).
  public var node: String
  /// The scheduler's name for the node taken out of service.
  public var drains: String
  /// The scheduler's name for its replacement, which is put back into service.
  public var uncordons: String

  public init(node: String, drains: String, uncordons: String) {
    self.node = node
    self.drains = drains
    self.uncordons = uncordons
  }
}

extension DrainSpec.Backend {
  /// The scheduler a drain speaks to (nil: none, or user hooks, which name nodes themselves).
  public var scheduler: String? {
    switch self {
    case .kubernetes: return "kubernetes"
    case .slurm: return "slurm"
    case .none, .command: return nil
    }
  }

  /// `drain.node_name`, or the default (`{{hostname}}`: what a kubelet registers, what a Slurm
  /// node is usually called); nil for back-ends without scheduler names.
  public var nodeNameTemplate: String? {
    switch self {
    case .kubernetes(_, _, _, let name), .slurm(let name): return name ?? "{{hostname}}"
    case .none, .command: return nil
    }
  }

  /// The names a replacement of `from` by `to` uses, or nil when this back-end has none. A
  /// variable with no value yet (an address before the node is up) shows as the template's
  /// words: the drain fills it in, or stops with an error naming it.
  public func schedulerNames(from: NodeOwnership, to: NodeOwnership) -> SchedulerNames? {
    guard let template = nodeNameTemplate else { return nil }
    func name(_ o: NodeOwnership) -> String { NodeTemplate.render(template, NodeVariables(ownership: o, address: nil)) ?? "\(template) (filled in at drain time)" }
    return SchedulerNames(node: from.key, drains: name(from), uncordons: name(to))
  }
}
