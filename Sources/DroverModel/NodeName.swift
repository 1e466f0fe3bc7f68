/// The name of a pool's node at an index, `<pool>-<index>` (`web-2`): a node's key in schedules,
/// journals and reports, its domain's name in place, its hostname. Defined here once so every
/// layer spells it the same way.
public enum NodeName {
  public static func of(pool: String, index: Int) -> String { "\(pool)-\(index)" }

  /// The names of a pool's first `replicas` indexes (1-based).
  public static func all(pool: String, replicas: Int) -> [String] { (0..<max(0, replicas)).map { of(pool: pool, index: $0 + 1) } }
}

extension NodeOwnership {
  /// The index name of the node this record is for (its key; a surge replacement's domain is
  /// named `<key>-g<generation>`).
  public var key: String { NodeName.of(pool: pool, index: index) }
}
