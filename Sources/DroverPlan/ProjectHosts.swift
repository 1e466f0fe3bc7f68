import DroverModel

/// Which hosts a project reads, beyond the ones its pool files name.
///
/// Why: Drover keeps no inventory — libvirt is the source of truth — but it can only read the
/// hosts it knows. When the last pool file naming a host is removed, the nodes there would go
/// unmentioned: never planned for deletion, never drifted. So every host where the project was
/// seen owning something is remembered (`.drover/hosts`), read like a declared one, and its
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
  public static func toRemember(declared: Set<String>, remembered: Set<String>, observed: ObservedWorld, project: String) -> Set<String> {
    var keep = declared
    for uri in remembered where observed.unreachable[uri] != nil || observed.hosts[uri] == nil { keep.insert(uri) }
    for (uri, host) in observed.hosts where holdsSomething(host, project: project) { keep.insert(uri) }
    return keep
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
