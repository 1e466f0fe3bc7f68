import Foundation
import Libvirt
import Testing

/// What a pool looks like on the host, read straight from libvirt (never through Drover).
struct NodeView: Hashable {
  var name: String
  var uuid: String
  var id: UInt32?
  var index: Int
  var image: String
  var generation: Int
  var recordedDisk: String
  /// The domain's real disks (`pool/volume`), from its persistent XML.
  var disks: [String]
  var vcpu: Int
  var memoryKiB: UInt64
  var healthFailed: Bool
  /// Kept for a warm rollback (`role="kept"`, #45): not a replica.
  var kept: Bool = false
}

extension CLIHarness {
  /// Every domain of `pool` in this harness's project, by index.
  func nodes(_ pool: String) throws -> [NodeView] {
    try holder.allDomains().compactMap { d -> NodeView? in
      guard let meta = try? d.metadata(namespace: "https://drover.dev/xmlns/node/1"), meta.contains("pool=\"\(pool)\""),
        meta.contains("project=\"\(project)\"")
      else { return nil }
      func attr(_ k: String) -> String { meta.components(separatedBy: " \(k)=\"").dropFirst().first?.components(separatedBy: "\"").first ?? "" }
      let xml = try d.xml(inactive: true)
      let disks = xml.components(separatedBy: "<source pool='").dropFirst().compactMap { part -> String? in
        let pool = part.components(separatedBy: "'").first ?? ""
        let volume = part.components(separatedBy: "volume='").dropFirst().first?.components(separatedBy: "'").first ?? ""
        return "\(pool)/\(volume)"
      }
      let vcpu = Int(xml.components(separatedBy: "<vcpu").dropFirst().first?.components(separatedBy: ">").dropFirst().first?
        .components(separatedBy: "<").first ?? "") ?? 0
      let memory = UInt64(xml.components(separatedBy: "<memory unit='KiB'>").dropFirst().first?.components(separatedBy: "<").first ?? "") ?? 0
      return NodeView(
        name: d.name, uuid: d.uuid, id: d.id, index: Int(attr("index")) ?? 0, image: attr("image"), generation: Int(attr("generation")) ?? 0,
        recordedDisk: attr("disk"), disks: disks, vcpu: vcpu, memoryKiB: memory, healthFailed: attr("health") == "failed",
        kept: attr("role") == "kept")
    }.sorted { ($0.index, $0.name) < ($1.index, $1.name) }
  }

  /// Drover's overlays of this project in the test driver's image pool.
  func overlays(_ pool: String) throws -> [String] {
    try holder.storagePool(named: "drover-images")?.volumeNames()
      .filter { $0.hasPrefix("drover.\(project).\(pool)-") }.map { "drover-images/\($0)" }.sorted() ?? []
  }

  /// The invariant of every day-2 path: each node has exactly its own overlay, and no overlay is
  /// left without its node.
  func expectOverlaysMatchDomains(_ pool: String, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let nodes = try self.nodes(pool)
    let used = nodes.flatMap(\.disks).sorted()
    #expect(try overlays(pool) == used, "\(context): overlays = disks of the domains", sourceLocation: sourceLocation)
    #expect(nodes.allSatisfy { $0.disks == [$0.recordedDisk] }, "\(context): every record names its real disk", sourceLocation: sourceLocation)
  }

  func virsh(_ args: [String]) throws -> Int32 { try Self.virsh(args) }

  /// Runs `virsh -c <the test driver>`; returns its exit status.
  static func virsh(_ args: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
    p.arguments = ["-c", CLIHarness.uri] + args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
  }
}
