import DroverModel
import Testing

/// #39: overlay names are parsed byte by byte (every observe, plan and fingerprint parses each
/// volume). The parse must accept exactly what the earlier string-based one did: the canonical
/// spelling of a valid project, pool, index, generation and kind, nothing else.
@Suite struct OverlayNameParsingTests {
  /// The earlier parser, kept as the reference.
  static func reference(_ volume: String) -> OverlayName? {
    let parts = volume.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 5, parts[0] == "drover", let kind = OverlayName.Kind(rawValue: String(parts[4])), !parts[1].isEmpty, parts[3].hasPrefix("g"),
      let generation = Int(parts[3].dropFirst()), generation > 0,
      let dash = parts[2].lastIndex(of: "-"), let index = Int(parts[2][parts[2].index(after: dash)...]), index > 0
    else { return nil }
    let pool = String(parts[2][..<dash])
    guard PoolName.isValid(pool), ProjectName.isValid(String(parts[1])), index < 1 << 31, generation < 1 << 31 else { return nil }
    let name = OverlayName(project: String(parts[1]), pool: pool, index: index, generation: generation, kind: kind)
    return name.volume == volume ? name : nil
  }

  static let names = [
    "drover.p.web-1.g1.qcow2", "drover.p.web-1.g1.seed", "drover.My_Proj-2.web-east-12.g340.qcow2", "drover.p.web-01.g1.qcow2",
    "drover.p.web-1.g01.qcow2", "drover.p.web-1.g+1.qcow2", "drover.p.web-+1.g1.qcow2", "drover.p.web-0.g1.qcow2", "drover.p.web-1.g0.qcow2",
    "drover.p.web-1.g.qcow2", "drover.p.web-.g1.qcow2", "drover.p.-1.g1.qcow2", "drover.p.web--1.g1.qcow2", "drover.p.1web-1.g1.qcow2",
    "drover.p.Web-1.g1.qcow2", "drover.p.wéb-1.g1.qcow2", "drover..web-1.g1.qcow2", "drover.p.web-1.g1.raw", "drover.p.web-1.g1",
    "drover.p.web-1.g1.qcow2.x", "Drover.p.web-1.g1.qcow2", "drover.p.web-2147483647.g2147483647.qcow2", "drover.p.web-2147483648.g1.qcow2",
    "drover.p.web-1.g99999999999999999999.qcow2", "drover.p q.web-1.g1.qcow2", "drover.p.a-b-c-3.g7.seed", "drover.p.web-1.G1.qcow2",
    "drover.\(String(repeating: "p", count: 64)).web-1.g1.qcow2", "drover.\(String(repeating: "p", count: 65)).web-1.g1.qcow2",
    "drover.p.\(String(repeating: "w", count: 40))-1.g1.qcow2", "drover.p.\(String(repeating: "w", count: 41))-1.g1.qcow2", "", ".", "....",
    "drover.p.web-1.g1.qcow2\n", "drover.p.web-1 .g1.qcow2", "drover.p.web-１.g1.qcow2",
  ]

  @Test(arguments: names)
  func parsesExactlyAsTheReference(_ volume: String) {
    #expect(OverlayName(volume: volume) == Self.reference(volume), "\(volume.debugDescription)")
  }

  @Test func poolAndProjectNamesByBytes() {
    for name in ["web", "w", "web-1", "web-", "-web", "1web", "wEb", "wéb", "", "a\u{0301}"] {
      let old = name.first.map { $0.isLetter && name.count <= 40 && !name.hasSuffix("-") && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") } } ?? false
      #expect(PoolName.isValid(name) == old, "\(name)")
    }
  }
}
