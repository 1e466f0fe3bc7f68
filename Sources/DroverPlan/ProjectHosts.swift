import DroverModel

/// Which hosts a project reads, beyond the ones its pool files name.
///
/// Why: Drover keeps no inventory — libvirt is the source of truth — but it can only read the
/// hosts it knows. When the last pool file naming a host is removed, the nodes there would go
/// unmentioned: never planned for deletion, never drifted. So every host where the project was
/// seen owning something is remembered (`.drover/hosts.<project>`), read like a declared one, and its
/// leftover nodes are planned like those of any removed pool. A remembered host is forgotten only
/// once it has been read and holds nothing of the project's.
///
/// Pure: values in, values out; the command layer reads and writes the file.
public enum ProjectHosts {
  /// The hosts to connect to and read: declared ∪ remembered, sorted.
  public static func toRead(declared: Set<String>, remembered: Set<String>) -> [String] {
    declared.union(remembered).sorted()
  }

  /// What to remember after observing `observed`: every declared host (it may get nodes now),
  /// every host holding a domain or an overlay of `project`, and every remembered host that could
  /// not be read (what it holds is unknown, so it is not forgotten).
  /// `observed` is the world as read, before `withoutAliases`: a remembered host that turns out
  /// to be a declared one under another URI is forgotten.
  public static func toRemember(declared: Set<String>, remembered: Set<String>, observed: ObservedWorld, project: String) -> Set<String> {
    let aliased = aliases(declared: declared, observed: observed)
    var keep = declared
    for uri in remembered where observed.unreachable[uri] != nil || observed.hosts[uri] == nil { keep.insert(uri) }
    for (uri, host) in observed.hosts where holdsSomething(host, project: project) && !aliased.contains(uri) { keep.insert(uri) }
    return keep
  }

  /// Remembered-only hosts that are a declared host under another spelling (`qemu:///system` and
  /// `qemu+unix:///system`, a user name or an FQDN added to an ssh URI): every domain they list
  /// — at least one — is listed by one declared host with the same name and UUID.
  ///
  /// Why: read twice, one daemon's nodes would look like duplicates on two hosts, and the
  /// "duplicate" would be deleted through the other URI — the node itself.
  public static func aliases(declared: Set<String>, observed: ObservedWorld) -> Set<String> {
    let declaredSets = declared.compactMap { observed.hosts[$0] }.map { Set($0.domains.map { "\($0.name)|\($0.uuid)" }) }
    var result: Set<String> = []
    for (uri, host) in observed.hosts where !declared.contains(uri) && !host.domains.isEmpty {
      let mine = Set(host.domains.map { "\($0.name)|\($0.uuid)" })
      if declaredSets.contains(where: { mine.isSubset(of: $0) }) { result.insert(uri) }
    }
    return result
  }

  /// The world to plan with: `observed` without the remembered hosts that alias a declared one.
  public static func withoutAliases(_ observed: ObservedWorld, declared: Set<String>) -> ObservedWorld {
    var world = observed
    for uri in aliases(declared: declared, observed: observed) { world.hosts[uri] = nil }
    return world
  }

  /// Remembered hosts that are no longer declared and could not be read: their nodes cannot be
  /// planned, which must not read as "No changes".
  public static func unreadFormerHosts(declared: Set<String>, observed: ObservedWorld) -> [(uri: String, reason: String)] {
    observed.unreachable.filter { !declared.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }

  static func holdsSomething(_ host: ObservedHost, project: String) -> Bool {
    host.domains.contains { $0.ownership?.project == project }
      || host.overlays.contains { OverlayName(volume: $0)?.project == project }
  }
}
