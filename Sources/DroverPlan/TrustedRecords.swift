import DroverModel

/// Which of a project's records the planner and drift may reason with, decided once.
///
/// Why a separate step: a record alone never decides anything. Only a record whose keyed seal
/// verifies and that is bound to its domain counts as a node (`owned`). A record of this project
/// that fails (a clone, a copy, an edit, a forgery) is `refused`: never deleted, rewritten or taken
/// for a duplicate, and reported so a person can remove it or `drover adopt` it. Records from
/// before keyed records (`legacy`) are trusted only while the project has no keyed record at all
/// and this machine holds no key (the one-time migration, in the apply that creates the key): then
/// each is sealed by that apply, unless two claim one node.
/// Pure: reads its arguments only.
public struct TrustedRecords: Sendable {
  public typealias Entry = (host: String, domain: ObservedDomain, ownership: NodeOwnership)

  /// Records that count as the project's nodes.
  public var owned: [Entry] = []
  /// Records of the project that are never acted on, with why.
  public var refused: [(entry: Entry, why: String)] = []
  /// Whether the hosts hold records of the project sealed with a key this machine lacks:
  /// plan and drift are then advisory and apply refuses.
  public var advisory = false
  /// The key id of those records (for the message), when advisory.
  public var foreignKeyID: String?
  /// Whether any record of the project is keyed (verified or not checkable here).
  public var keyed = false
  /// Whether the hosts hold any record claiming this project (a key must never be created then).
  public var anyRecord = false

  /// - Parameter keyHeld: whether this machine holds the project key. Then the project has been
  ///   migrated: a record without a keyed seal is a copy or a forgery, never a node.
  public init(_ observed: ObservedWorld, project: String, keyHeld: Bool = false) {
    var legacy: [Entry] = []
    for (uri, host) in observed.hosts.sorted(by: { $0.key < $1.key }) {
      for d in host.domains {
        guard let o = d.ownership, o.project == project else { continue }
        anyRecord = true
        guard o.node == d.name else {
          refused.append(((uri, d, o), "its record is node \(o.node)'s, not this domain's: it looks like a copy of \(o.node)"))
          continue
        }
        switch d.trust {
        case .verified:
          keyed = true
          owned.append((uri, d, o))
        case .unchecked(let id):
          keyed = true
          advisory = true
          foreignKeyID = foreignKeyID ?? id
          owned.append((uri, d, o))
        case .legacy:
          legacy.append((uri, d, o))
        case .mismatch(let why):
          refused.append(((uri, d, o), why))
        }
      }
    }
    guard !keyed, !keyHeld else {
      refused += legacy.map {
        ($0, "its record has no keyed seal while this project's records do: a copy, a forgery, or a node an older Drover wrote that someone restored")
      }
      return
    }
    // Migration: a legacy record is this project's node when no other record claims its node.
    let claims = Dictionary(grouping: legacy, by: { NodeName.of(pool: $0.ownership.pool, index: $0.ownership.index) })
    for entry in legacy {
      let rivals = claims[NodeName.of(pool: entry.ownership.pool, index: entry.ownership.index)]?.count ?? 0
      if rivals > 1 {
        refused.append((entry, "\(rivals) records from an older Drover claim node \(entry.ownership.node): Drover cannot tell which is real"))
      } else {
        owned.append(entry)
      }
    }
  }

  /// The refused domains, as `host NUL name`: a refused record keeps its domain's name taken, so
  /// the planner never plans a create there and drift never calls it a foreign name.
  public var refusedNames: Set<String> { Set(refused.map { Self.nameKey(host: $0.entry.host, name: $0.entry.domain.name) }) }

  public static func nameKey(host: String, name: String) -> String { "\(host)\u{0}\(name)" }
}
