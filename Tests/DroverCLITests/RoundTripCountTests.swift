import Foundation
import Testing

/// #39: what one created node costs on the wire, counted by libvirt's own client (its RPC debug
/// log names the procedure of every message it sends), not by Drover's counters.
@Suite struct RoundTripCountTests {
  /// Procedure numbers of libvirt's remote protocol (`remote_protocol.x`).
  enum Procedure {
    static let defineXML = 11, create = 9, lookupByUUID = 24, poolLookupByName = 84, volumeCreateXML = 93, createWithFlags = 196
  }

  /// The procedures the client sent, by number, from its RPC debug log.
  static func procedures(inLog path: String) throws -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") where line.contains("RPC_CLIENT_MSG_TX_QUEUE") {
      guard let range = line.range(of: " proc=") else { continue }
      if let n = Int(line[range.upperBound...].prefix { $0.isNumber }) { counts[n, default: 0] += 1 }
    }
    return counts
  }

  /// A node is an overlay, a definition and a start: three round trips. `virDomainCreate` over
  /// RPC was two (the start, then a lookup by UUID for the new id); the storage pool's handle is
  /// looked up once per connection, never per node.
  @Test func aNewNodeIsThreeRoundTrips() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rt")
    let nodes = 12
    try h.writePool(pool, replicas: nodes)
    defer {
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"])
    }
    let log = h.dir.appendingPathComponent("rpc.log").path
    let apply = try h.run(["apply", "--auto-approve"], environment: ["LIBVIRT_LOG_FILTERS": "1:rpc.netclient", "LIBVIRT_LOG_OUTPUTS": "1:file:\(log)"])
    #expect(apply.status == 0, "\(apply.stderr)")
    let sent = try Self.procedures(inLog: log)
    #expect(sent[Procedure.volumeCreateXML] == nodes && sent[Procedure.defineXML] == nodes && sent[Procedure.createWithFlags] == nodes, "\(sent)")
    #expect(sent[Procedure.create] == nil && sent[Procedure.lookupByUUID] == nil, "no two-trip start: \(sent)")
    #expect((sent[Procedure.poolLookupByName] ?? 0) < nodes, "the pool is looked up per connection, not per node: \(sent)")
  }
}
