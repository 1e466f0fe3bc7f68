import DroverBasics
import DroverModel

/// A digest of the observed world, with enough detail to say what changed.
///
/// Per host, every domain's name → "uuid state metadata-digest" (foreign domains too, since a
/// foreign domain that appears with a node's name changes what apply may do).
public struct WorldFingerprint: Sendable, Codable, Hashable {
  public var hosts: [String: [String: String]]

  public init(hosts: [String: [String: String]]) { self.hosts = hosts }

  public init(_ world: ObservedWorld, relevantHosts: Set<String>) {
    var hosts: [String: [String: String]] = [:]
    for uri in relevantHosts {
      guard let host = world.hosts[uri] else { continue }
      var entries: [String: String] = [:]
      for d in host.domains {
        entries[d.name] = "\(d.uuid) \(d.isActive ? "active" : "inactive") \(d.metadataDigest)"
      }
      hosts[uri] = entries
    }
    self.hosts = hosts
  }

  public var digest: String {
    var text = ""
    for uri in hosts.keys.sorted() {
      text += "host \(uri)\n"
      for (name, entry) in hosts[uri]!.sorted(by: { $0.key < $1.key }) { text += "\(name) \(entry)\n" }
    }
    return ContentDigest.of(text).hex
  }

  /// Human lines naming each difference from `other` (the plan's world) to `self` (now).
  public func differences(from planned: WorldFingerprint) -> [String] {
    var lines: [String] = []
    for uri in Set(hosts.keys).union(planned.hosts.keys).sorted() {
      let now = hosts[uri] ?? [:], then = planned.hosts[uri] ?? [:]
      for name in Set(now.keys).union(then.keys).sorted() {
        switch (then[name], now[name]) {
        case (nil, _?): lines.append("\(uri): domain \(name) appeared")
        case (_?, nil): lines.append("\(uri): domain \(name) disappeared")
        case (let a?, let b?) where a != b:
          let (pa, pb) = (a.split(separator: " "), b.split(separator: " "))
          if pa.first != pb.first {
            lines.append("\(uri): domain \(name) was recreated (new UUID)")
          } else if pa.count > 1, pb.count > 1, pa[1] != pb[1] {
            lines.append("\(uri): domain \(name) is now \(pb[1])")
          } else {
            lines.append("\(uri): domain \(name) metadata changed")
          }
        default: break
        }
      }
    }
    return lines
  }
}
