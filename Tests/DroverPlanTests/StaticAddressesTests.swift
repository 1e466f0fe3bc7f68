import DroverModel
import DroverPlan
import Foundation
import Testing

/// #18: static addresses — two slots per index, generations alternate, so a surge pair never
/// shares an address and a node keeps its own across restarts.
@Suite struct StaticAddressesTests {
  static let net = StaticAddresses(first: StaticAddresses.parse("192.168.122.240")!, prefix: 24, gateway: StaticAddresses.parse("192.168.122.1"), dns: [StaticAddresses.parse("192.168.122.1")!])

  @Test(arguments: [
    (1, 1, "192.168.122.241"), (1, 2, "192.168.122.240"), (1, 3, "192.168.122.241"),
    (2, 1, "192.168.122.243"), (2, 2, "192.168.122.242"), (7, 2, "192.168.122.252"), (7, 1, "192.168.122.253"),
  ])
  func slots(_ index: Int, _ generation: Int, _ expected: String) {
    #expect(Self.net.address(index: index, generation: generation) == expected)
  }

  @Test func aReplacementNeverTakesItsNodesAddress() {
    for index in 1...7 {
      for generation in 1...5 {
        #expect(Self.net.address(index: index, generation: generation) != Self.net.address(index: index, generation: generation + 1))
      }
    }
  }

  /// Generations can skip (a crash leaves a later one's volume): a replacement still takes the
  /// index's other address, never the one its predecessor's record holds.
  @Test func aReplacementTakesTheOtherAddressWhateverItsGeneration() {
    #expect(Self.net.address(index: 1, replacing: "192.168.122.241") == "192.168.122.240")
    #expect(Self.net.address(index: 1, replacing: "192.168.122.240") == "192.168.122.241")
    #expect(Self.net.address(index: 1, replacing: nil) == "192.168.122.240", "a node that was on DHCP")
  }

  @Test(arguments: [("127.0.0.5", true), ("0.1.2.3", true), ("169.254.1.1", true), ("224.0.0.1", true), ("255.255.255.255", true), ("10.0.0.1", false), ("192.168.122.1", false)])
  func specialUseAddresses(_ text: String, _ special: Bool) {
    #expect((StaticAddresses.specialUse(StaticAddresses.parse(text)!) != nil) == special, "\(text)")
  }

  @Test func thePoolMustFitBeforeTheBroadcastAddress() {
    #expect(Self.net.fits(replicas: 7), ".240-.253")
    #expect(!Self.net.fits(replicas: 8), ".254 and .255 would be needed; .255 is the broadcast")
    #expect(Self.net.address(index: 8, generation: 1) == nil)
  }

  @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "a.b.c.d", "1.2.3.4 "])
  func notAddresses(_ text: String) {
    #expect(StaticAddresses.parse(text) == nil, "\(text)")
  }

  @Test func theNetworkConfigMatchesTheNodesMAC() {
    let text = Self.net.networkConfig(address: "192.168.122.242", mac: "02:aa:bb:cc:dd:ee")
    #expect(text == """
      version: 2
      ethernets:
        drover0:
          match:
            macaddress: "02:aa:bb:cc:dd:ee"
          addresses: ["192.168.122.242/24"]
          routes:
            - to: 0.0.0.0/0
              via: 192.168.122.1
          nameservers:
            addresses: [192.168.122.1]

      """)
  }

  /// A rollback re-creates a node from its old record; its seed is the pool's now, and so must be
  /// what its record says.
  @Test func aRecreatedNodesRecordFollowsTheSeedItGets() {
    var pool = PoolSpec(name: "web", hosts: ["qemu:///system"], replicas: 2, image: ImageRef(parsing: "debian@v1")!, network: "default")
    pool.staticAddresses = Self.net
    var old = desiredOwnership(pool, index: 1, digest: "", generation: 1, project: "p")
    old.seed = "0000"
    #expect(SeedRecord.align(old, pool: pool).address == "192.168.122.241", "an address of its index stays")
    #expect(SeedRecord.align(old, pool: pool).seed == CloudInitSeed.digest(pool))
    old.address = "10.9.9.9"
    #expect(SeedRecord.align(old, pool: pool).address == "192.168.122.241", "one the addressing cannot give is replaced")
    pool.staticAddresses = nil
    #expect(SeedRecord.align(old, pool: pool).address == nil, "no addressing: DHCP, and no address to connect to")
  }
}
