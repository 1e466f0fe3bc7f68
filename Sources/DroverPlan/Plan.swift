import DroverBasics
import DroverModel

/// What a plan step does to a node, in Terraform's vocabulary.
public enum ActionKind: String, Sendable, Codable, Hashable {
  case create, start, update, replace, delete
  /// Delete an overlay volume of Drover's that no domain uses (left by a crash).
  case removeOverlay = "remove-overlay"

  /// The Terraform-style marker shown in front of the node.
  public var symbol: String {
    switch self {
    case .create: return "+"
    case .start: return "~"
    case .update: return "~"
    case .replace: return "-/+"
    case .delete, .removeOverlay: return "-"
    }
  }
}

/// What an action needs to run, checked once: a saved plan is a file anyone could have edited, so
/// a missing field is a located error, never a crash.
public enum ActionPayload: Sendable, Hashable {
  case create(NodeDefinition)
  case start(uuid: String)
  case update(uuid: String, to: NodeOwnership, restart: Bool)
  case replace(uuid: String, before: NodeOwnership, after: NodeOwnership)
  case delete(uuid: String)
  case removeOverlay(volume: String)
}

/// One step of a plan: what, to which node on which host, and why.
///
/// The executor runs these from data only; `reason` is for people and never branched on.
public struct PlannedAction: Sendable, Codable, Hashable {
  public var kind: ActionKind
  public var pool: String
  public var node: String
  public var host: String
  public var reason: String
  /// The domain's UUID when the node exists (every kind but create).
  public var uuid: String?
  /// The node as it is, when it exists.
  public var before: NodeOwnership?
  /// The node as it will be (create, update, replace, start).
  public var after: NodeDefinition?
  /// For update: whether the node restarts to apply it (vCPU/memory changes).
  public var restart: Bool
  /// For replace: the host the replacement goes to, when it is not the node's own (a move: the
  /// host left `hosts:`, is being drained, or is cordoned). nil: the same host.
  public var destination: String? = nil

  /// `action` in documents, as in `apply --json`'s step events.
  enum CodingKeys: String, CodingKey {
    case kind = "action", pool, node, host, reason, uuid, before, after, restart, destination
  }

  public init(
    kind: ActionKind, pool: String, node: String, host: String, reason: String, uuid: String? = nil,
    before: NodeOwnership? = nil, after: NodeDefinition? = nil, restart: Bool = false
  ) {
    self.kind = kind
    self.pool = pool
    self.node = node
    self.host = host
    self.reason = reason
    self.uuid = uuid
    self.before = before
    self.after = after
    self.restart = restart
  }
}

extension PlannedAction {
  /// The action's payload, or an error naming what is missing.
  public func payload() throws -> ActionPayload {
    func missing(_ field: String) -> Diagnostic {
      .error(
        "plan.file", "\(kind.rawValue) of \(node) on \(host) has no \(field)", subject: "node \(node) on \(host)",
        hint: "the plan was not written by this Drover or was edited; make a new one with drover plan --out")
    }
    switch kind {
    case .create:
      guard let after, after.ownership.node == node else { throw missing("node definition") }
      return .create(after)
    case .start:
      guard let uuid else { throw missing("uuid") }
      return .start(uuid: uuid)
    case .update:
      guard let uuid else { throw missing("uuid") }
      guard let after, after.ownership.node == node else { throw missing("node definition") }
      return .update(uuid: uuid, to: after.ownership, restart: restart)
    case .replace:
      guard let uuid else { throw missing("uuid") }
      guard let before, let after else { throw missing("before and after records") }
      return .replace(uuid: uuid, before: before, after: after.ownership)
    case .delete:
      guard let uuid else { throw missing("uuid") }
      return .delete(uuid: uuid)
    case .removeOverlay:
      guard OverlayName(volume: node) != nil else { throw missing("overlay volume name") }
      return .removeOverlay(volume: node)
    }
  }
}

/// A pool whose nodes exist but which no pool file declares, kept because `--prune` was not given.
public struct UndeclaredPool: Sendable, Codable, Hashable {
  public var pool: String
  public var nodes: [String]
  public var hosts: [String]
  public init(pool: String, nodes: [String], hosts: [String]) {
    self.pool = pool
    self.nodes = nodes
    self.hosts = hosts
  }
}

/// A node a rollout replaced and kept shut off for a warm rollback (#45): shown by the plan, not
/// a replica, not drift; removed when its time passes, by `drover rollout finish`, by the pool's
/// next rollout, or when the plan needs its room (each said as the delete's reason).
public struct KeptEntry: Sendable, Codable, Hashable {
  public var pool: String
  public var node: String
  public var host: String
  public var image: String
  public var rollout: String
  public var until: Double
  public var reserves: Bool
  public init(pool: String, node: String, host: String, image: String, rollout: String, until: Double, reserves: Bool) {
    self.pool = pool
    self.node = node
    self.host = host
    self.image = image
    self.rollout = rollout
    self.until = until
    self.reserves = reserves
  }
}

/// The nodes of a pool on a host that could not be read (`--skip-unreachable`): unknown, so the
/// pool gets no action at all. `nodes` are the names the spec places there; `seen` the pool's
/// nodes read on its other hosts.
public struct UnknownNodes: Sendable, Codable, Hashable {
  public var pool: String
  public var host: String
  public var nodes: [String]
  public var reason: String
  public var seen: [String]
  public init(pool: String, host: String, nodes: [String], reason: String, seen: [String]) {
    self.pool = pool
    self.host = host
    self.nodes = nodes
    self.reason = reason
    self.seen = seen
  }
}

/// The ordered changes that make the observed world match the specs.
public struct Plan: Sendable, Codable {
  /// 3.0: snake_case keys, the project and the images' digests; `plan --json` prints the same document.
  public static let formatVersion = "3.0"

  public var formatVersion: String = Plan.formatVersion
  /// The project the plan was made for: a plan applied from another checkout must be of the same one.
  public var project: String = "default"
  /// The digest each image the plan's pools (and their rollouts' rollback targets) use resolved
  /// to when it was made ("" when not baked here): a plan whose image was rebaked since is refused.
  public var images: [String: String] = [:]
  public var actions: [PlannedAction]
  /// Digest of the pool specs the plan was made from.
  public var specDigest: String
  /// The observed world the plan was made against (see `WorldFingerprint`).
  public var world: WorldFingerprint
  /// `--target`/`--exclude` as given, so a saved plan re-plans the same slice.
  public var targets: [String]
  public var excludes: [String]
  public var forceReplace: [String]
  /// The rollout schedule of every pool with replacements: `apply` executes exactly these.
  public var rollouts: [RolloutPreview] = []
  /// Whether the plan deletes the nodes of undeclared pools (`--prune`); a saved plan re-plans with it.
  public var prune: Bool = false
  /// Pools no file declares whose nodes are kept (without `--prune`).
  public var undeclared: [UndeclaredPool] = []
  /// How the domains this plan defines run, by host: "KVM (vmx)" or "TCG (no vmx/svm in the host CPU)".
  public var acceleration: [String: String] = [:]
  /// The accelerator of every domain a pool gets on a host (`"<pool> <host>"`), rollouts' and
  /// rollbacks' included: what apply gives each domain it defines.
  public var accelerators: [String: Accel] = [:]

  /// The key of `accelerators`.
  public static func acceleratorKey(pool: String, host: String) -> String { "\(pool) \(host)" }
  /// Pools left out because a host of theirs could not be read (`--skip-unreachable`).
  public var unknown: [UnknownNodes] = []
  /// Kept nodes the plan leaves as they are (#45); nil in older plans.
  public var kept: [KeptEntry]? = nil
  /// For each pool the plan touches, the programs its apply runs on this machine (`PoolPrograms`).
  public var programs: [String: [String]] = [:]

  public init(
    actions: [PlannedAction], specDigest: String, world: WorldFingerprint, targets: [String] = [], excludes: [String] = [],
    forceReplace: [String] = []
  ) {
    self.forceReplace = forceReplace
    self.actions = actions
    self.specDigest = specDigest
    self.world = world
    self.targets = targets
    self.excludes = excludes
  }

  public var hasChanges: Bool { !actions.isEmpty || rollouts.contains { $0.resumes != nil } }

  /// Terraform's counting: replace counts as one add and one destroy; update and start as change.
  public var summary: (add: Int, change: Int, destroy: Int) {
    var s = (add: 0, change: 0, destroy: 0)
    for a in actions {
      switch a.kind {
      case .create: s.add += 1
      case .update, .start: s.change += 1
      case .replace:
        s.add += 1
        s.destroy += 1
      case .delete, .removeOverlay: s.destroy += 1
      }
    }
    return s
  }
}
