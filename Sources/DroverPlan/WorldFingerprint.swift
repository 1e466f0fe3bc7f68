import DroverBasics
import DroverModel

/// A digest of the observed world, with enough detail to say what changed.
///
/// Per host, name → "uuid state metadata-digest" of every domain that can change what apply does:
/// the project's own nodes, and any domain named like a node of a declared pool (`<pool>-…`: a
/// foreign domain taking a node's name). Unrelated VMs on a shared host starting or stopping do
/// not make a saved plan stale.
public struct WorldFingerprint: Sendable, Codable, Hashable {
  public var hosts: [String: [String: String]]

  public init(hosts: [String: [String: String]]) { self.hosts = hosts }

  public init(_ world: ObservedWorld, relevantHosts: Set<String>, project: String, pools: Set<String>) {
    var hosts: [String: [String: String]] = [:]
    for uri in relevantHosts {
      guard let host = world.hosts[uri] else { continue }
      var entries: [String: String] = [:]
      for d in host.domains {
        let owned = d.ownership?.project == project
        let namedLikeANode = pools.contains { d.name.hasPrefix($0 + "-") }
        guard owned || namedLikeANode else { continue }
        let shape = d.actual.map { "v\($0.vcpu)/\($0.maxVcpu)m\($0.memoryKiB)d\($0.disks.joined(separator: ","))n\($0.networks.joined(separator: ","))" } ?? "-"
        entries[d.name] = "\(d.uuid) \(d.isActive ? "active" : "inactive") \(d.metadataDigest) \(Self.underscored(shape))"
      }
      for volume in host.overlays where OverlayName(volume: volume)?.project == project {
        entries["overlay " + volume] = "present"
      }
      // A cordon set or lifted since the plan changes where its nodes may go.
      if HostCordon.isCordoned(host) { entries["host cordon"] = "present" }
      hosts[uri] = entries
    }
    self.hosts = hosts
  }

  /// Spaces as `_` (an entry's fields are space-separated), byte by byte: Foundation's
  /// `replacingOccurrences` per domain was a measurable part of a 1,000-node plan.
  static func underscored(_ s: String) -> String {
    s.utf8.contains(0x20) ? String(decoding: s.utf8.map { $0 == 0x20 ? 0x5F : $0 }, as: UTF8.self) : s
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
        case (nil, _?): lines.append(name == "host cordon" ? "\(uri): the host was cordoned" : "\(uri): domain \(name) appeared")
        case (_?, nil): lines.append(name == "host cordon" ? "\(uri): the host was uncordoned" : "\(uri): domain \(name) disappeared")
        case (let a?, let b?) where a != b:
          let (pa, pb) = (a.split(separator: " "), b.split(separator: " "))
          if pa.first != pb.first {
            lines.append("\(uri): domain \(name) was recreated (new UUID)")
          } else if pa.count > 1, pb.count > 1, pa[1] != pb[1] {
            lines.append("\(uri): domain \(name) is now \(pb[1])")
          } else if pa.count > 3, pb.count > 3, pa[2] == pb[2], pa[3] != pb[3] {
            lines.append("\(uri): domain \(name) was changed outside Drover (vCPU, memory, disk or network)")
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
