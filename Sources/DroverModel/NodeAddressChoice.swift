/// Which of a node's DHCP leases to reach it at. A node that lost its DHCP client id (an
/// unclean stop, a domain made again with the same MAC) gets a new address while its old lease
/// stays listed for up to an hour: the first lease listed can be a dead one ("No route to
/// host"). The guest agent says which addresses the guest holds.
public enum NodeAddressChoice {
  /// The lease the guest holds; else the guest's own first address; else the first lease.
  public static func pick(leases: [String], agent: [String]) -> String? {
    leases.first { agent.contains($0) } ?? agent.first ?? leases.first
  }
}
