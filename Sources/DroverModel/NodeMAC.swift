import DroverBasics

/// A node's NIC address, derived from what names the node: project, pool, index and generation.
///
/// Why derived: a node keeps its address across restarts and updates (DHCP leases, firewall
/// rules and Slurm or Kubernetes inventories that key on it stay valid), while its replacement —
/// a new generation, also a surge node running beside it — gets another one, so a surge pair
/// never shares an address. Locally administered unicast (`02:…`), so it can never collide with
/// a vendor's address, and 40 bits of a SHA-256 so two nodes of a fleet practically never share one.
public enum NodeMAC {
  public static func address(project: String, pool: String, index: Int, generation: Int) -> String {
    let hex = Array(ContentDigest.of("drover-mac 1\n\(project)\n\(pool)\n\(index)\n\(generation)").hex.prefix(10))
    return "02:" + stride(from: 0, to: 10, by: 2).map { String(hex[$0..<$0 + 2]) }.joined(separator: ":")
  }
}
