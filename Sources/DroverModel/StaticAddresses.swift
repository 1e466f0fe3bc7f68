/// `static_addresses:` a pool's nodes get fixed IPv4 addresses through their seed's
/// `network-config` instead of DHCP.
///
/// Why two addresses per index: a surge replacement runs beside the node it replaces, so the
/// pair must never share an address. Index `i` owns slots `2·(i−1)` and `2·(i−1)+1` from
/// `first`; a new node takes the one its generation's parity names, and a replacement takes
/// the one its predecessor's record does not hold (generations can skip, parities can match).
/// A node keeps its address across restarts and in-place updates; the address lives in its
/// record and its seed is built from that record. Pure.
public struct StaticAddresses: Sendable, Hashable, Codable {
  /// The first address, as a 32-bit number, and the network's prefix length.
  public var first: UInt32
  public var prefix: Int
  public var gateway: UInt32?
  public var dns: [UInt32]

  public init(first: UInt32, prefix: Int, gateway: UInt32? = nil, dns: [UInt32] = []) {
    self.first = first
    self.prefix = prefix
    self.gateway = gateway
    self.dns = dns
  }

  /// The address of node `index` (1-based) in generation `generation`, nil past the network.
  public func address(index: Int, generation: Int) -> String? {
    guard index >= 1 else { return nil }
    let slot = UInt64(index - 1) * 2 + UInt64(generation & 1)
    let value = UInt64(first) + slot
    guard value <= UInt64(lastUsable) else { return nil }
    return Self.text(UInt32(value))
  }

  /// The address a replacement of node `index` takes: the index's slot the node it replaces
  /// (whose record says `replacing`) does not hold.
  public func address(index: Int, replacing: String?) -> String? {
    guard let (a, b) = addresses(index: index) else { return nil }
    return replacing == a ? b : a
  }

  /// The two addresses index `index` owns, nil past the network.
  public func addresses(index: Int) -> (String, String)? {
    guard let a = address(index: index, generation: 0), let b = address(index: index, generation: 1) else { return nil }
    return (a, b)
  }

  /// The highest address of the network that is not its broadcast address.
  var lastUsable: UInt32 {
    let hostBits = UInt32(32 - prefix)
    let mask: UInt32 = hostBits >= 32 ? 0 : ~UInt32(0) << hostBits
    let broadcast = (first & mask) | ~mask
    return prefix >= 31 ? broadcast : broadcast - 1
  }

  /// Whether `replicas` nodes fit (each index needs two slots).
  public func fits(replicas: Int) -> Bool { replicas == 0 || addresses(index: replicas) != nil }

  /// What goes into the seed digest: a change of addressing replaces the pool's nodes.
  public var summary: String {
    "\(Self.text(first))/\(prefix) gw \(gateway.map(Self.text) ?? "-") dns \(dns.map(Self.text).joined(separator: ","))"
  }

  /// cloud-init's network-config (version 2) for the node at `address`: its NIC matched by its MAC.
  public func networkConfig(address: String, mac: String) -> String {
    var text = "version: 2\nethernets:\n  drover0:\n    match:\n      macaddress: \"\(mac)\"\n    addresses: [\"\(address)/\(prefix)\"]\n"
    if let gateway { text += "    routes:\n      - to: 0.0.0.0/0\n        via: \(Self.text(gateway))\n" }
    if !dns.isEmpty { text += "    nameservers:\n      addresses: [\(dns.map(Self.text).joined(separator: ", "))]\n" }
    return text
  }

  /// Why `value` can be no node's or gateway's address: this machine's loopback, "this network",
  /// link-local, multicast or reserved space (a spec could otherwise point checks and hooks at
  /// the Drover host itself).
  public static func specialUse(_ value: UInt32) -> String? {
    switch value >> 24 {
    case 0: return "is in 0.0.0.0/8 (this network)"
    case 127: return "is a loopback address"
    case 224...255: return "is multicast or reserved"
    default: return value >> 16 == 0xA9FE ? "is link-local (169.254.0.0/16)" : nil
    }
  }

  /// Dotted-quad text of an address.
  public static func text(_ value: UInt32) -> String { "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)" }

  /// Parses a dotted quad (four decimal parts 0–255, no leading zeros).
  public static func parse(_ text: String) -> UInt32? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var value: UInt32 = 0
    for part in parts {
      guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber), part == "0" || !part.hasPrefix("0"),
        let n = UInt32(part), n <= 255
      else { return nil }
      value = value << 8 | n
    }
    return value
  }
}
