import DroverModel
import DroverPlan
import Foundation
import Testing

/// #18: a node's NoCloud seed is a pure function of its pool's spec and its own record: golden
/// files of both shapes (Drover's part alone, and merged with the pool's user-data).
@Suite struct CloudInitSeedTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/seeds")
  static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHj5m0Yc7cX2mFSy4tNtK6dMnV0yH3h2t6rV8mWbq0xZ ops@example \"laptop\""

  func golden(_ name: String, _ text: String) throws {
    let url = Self.fixtures.appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["DROVER_UPDATE_GOLDEN"] == "1" { try text.write(to: url, atomically: true, encoding: .utf8) }
    #expect(text == (try String(contentsOf: url, encoding: .utf8)), "\(name):\n\(text)")
  }

  static func pool(userData: String? = nil) -> PoolSpec {
    var p = PoolSpec(name: "web", hosts: ["qemu:///system"], replicas: 3, image: ImageRef(parsing: "debian@v1")!)
    p.sshKeys = [key]
    p.userData = userData
    return p
  }

  @Test func drversOwnPartNamesTheNodeAndItsGeneration() throws {
    let pool = Self.pool()
    var o = desiredOwnership(pool, index: 2, digest: "", generation: 3, project: "shop")
    o.node = "web-2-g3"  // a surge node: its hostname is its domain's name (#42), never its twin's
    let files = try #require(CloudInitSeed.files(for: o, pool: pool))
    try golden("web-2-g3.meta-data", files.metaData)
    try golden("web-2-g3.user-data", files.userData)
  }

  /// Drover's own user accepts the project's key only; the pool's keys stay the default user's.
  @Test func drversUserGetsTheProjectKey() throws {
    let pool = Self.pool()
    let project = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm2s0bq9k6vPp2lE5X3cJ0WmXr1Q3o8x7yVtZ4uKc1d drover@shop"
    let files = try #require(CloudInitSeed.files(for: desiredOwnership(pool, index: 1, digest: "", generation: 1, project: "shop"), pool: pool, droverKey: project))
    try golden("web-1-g1-drover-user.user-data", files.userData)
    let noKey = try #require(CloudInitSeed.files(for: desiredOwnership(pool, index: 1, digest: "", generation: 1, project: "shop"), pool: pool, droverKey: "not a key"))
    #expect(!noKey.userData.contains("name: drover"), "a key that is not one is never written")
  }

  /// Static addresses add a third file; the same pool without them keeps its digest.
  @Test func staticAddressesGiveEachNodeItsNetworkConfig() throws {
    var pool = Self.pool()
    let before = CloudInitSeed.digest(pool)
    pool.staticAddresses = StaticAddresses(first: StaticAddresses.parse("10.0.0.10")!, prefix: 24, gateway: StaticAddresses.parse("10.0.0.1"))
    #expect(CloudInitSeed.digest(pool) != before, "changing the addressing replaces the nodes")
    let o = desiredOwnership(pool, index: 2, digest: "", generation: 3, project: "shop")
    let files = try #require(CloudInitSeed.files(for: o, pool: pool))
    try golden("web-2-g3.network-config", try #require(files.networkConfig))
    #expect(files.networkConfig?.contains(NodeMAC.address(project: "shop", pool: "web", index: 2, generation: 3)) == true)
    #expect(CloudInitSeed.files(for: o, pool: Self.pool())?.networkConfig == nil)
  }

  @Test func anSSHCheckSeedsThePool() {
    var pool = Self.pool()
    pool.sshKeys = []
    #expect(!pool.seeded)
    pool.health = [HealthCheckSpec(kind: .ssh(command: "true", outputPattern: nil))]
    #expect(pool.seeded && pool.reachedOverSSH)
  }

  @Test func thePoolsUserDataIsASecondPartMergedAfterDrovers() throws {
    let pool = Self.pool(userData: "#cloud-config\npackages: [htop]\nruncmd:\n  - echo pool part\n")
    let files = try #require(CloudInitSeed.files(for: desiredOwnership(pool, index: 1, digest: "", generation: 1, project: "shop"), pool: pool))
    try golden("web-1-g1-merged.user-data", files.userData)
  }

  /// A node started again on its own disk says it is ready again: the marker is a per-boot
  /// script (cloud-init runs `runcmd` once per instance), which syncs the disk first.
  @Test func theReadyMarkerIsSaidOnEveryBootAfterASync() throws {
    let files = try #require(CloudInitSeed.files(for: desiredOwnership(Self.pool(), index: 1, digest: "", generation: 1, project: "shop"), pool: Self.pool()))
    #expect(!files.userData.contains("runcmd:"), "Drover's part runs nothing once per instance")
    #expect(files.userData.contains("write_files:\n  - path: \(CloudInitSeed.readyScript)\n    permissions: \"0755\"\n"))
    #expect(CloudInitSeed.readyScript.hasPrefix("/var/lib/cloud/scripts/per-boot/"))
    #expect(files.userData.contains(##"content: "#!/bin/sh\nsync\necho \"DROVER READY $(hostname) $(cat /var/lib/cloud/data/instance-id)\" > /dev/ttyS0\n""##), "\(files.userData)")
  }

  @Test func onlySeededPoolsGetSeedsAndTheirChangesReplaceNodes() {
    var plain = Self.pool()
    plain.sshKeys = []
    #expect(CloudInitSeed.files(for: desiredOwnership(plain, index: 1, digest: "", generation: 1, project: "p"), pool: plain) == nil)
    let a = desiredOwnership(Self.pool(), index: 1, digest: "", generation: 1, project: "p").specHash
    let b = desiredOwnership(Self.pool(userData: "#cloud-config\n{}\n"), index: 1, digest: "", generation: 1, project: "p").specHash
    let c = desiredOwnership(plain, index: 1, digest: "", generation: 1, project: "p").specHash
    #expect(Set([a, b, c]).count == 3, "keys and user-data are in the spec hash (cloud-init applies a seed once per instance)")
  }

  @Test func aSeedIsTheNodesSecondDiskNotAnOutsideChange() {
    let o = desiredOwnership(Self.pool(), index: 1, digest: "", generation: 2, project: "p")
    var withDisk = o
    withDisk.disk = "drover-images/" + OverlayName(project: "p", pool: "web", index: 1, generation: 2).volume
    let seed = "drover-images/" + OverlayName(project: "p", pool: "web", index: 1, generation: 2, kind: .seed).volume
    func shape(_ disks: [String]) -> DomainShape {
      DomainShape(vcpu: o.vcpu, maxVcpu: o.vcpu, memoryKiB: o.memoryMiB * 1024, liveVcpu: o.vcpu, liveMemoryKiB: o.memoryMiB * 1024, disks: disks, networks: [], title: nil)
    }
    #expect(outsideChanges(withDisk, actual: shape([withDisk.disk, seed])).isEmpty)
    let other = "drover-images/" + OverlayName(project: "p", pool: "web", index: 1, generation: 1, kind: .seed).volume
    #expect(outsideChanges(withDisk, actual: shape([withDisk.disk, other])).count == 1, "another node's seed is an outside change")
    #expect(OverlayName(volume: OverlayName(project: "p", pool: "web", index: 1, generation: 2, kind: .seed).volume)?.kind == .seed)
  }
}

/// A node's address when its MAC holds several leases (one of them stale).
@Suite struct NodeAddressChoiceTests {
  @Test(arguments: [
    (["192.168.122.182", "192.168.122.181"], ["192.168.122.181"], "192.168.122.181"),
    (["192.168.122.10"], [], "192.168.122.10"),
    (["192.168.122.10", "192.168.122.11"], [], "192.168.122.10"),
    (["192.168.122.10", "192.168.122.11"], ["10.0.0.5"], "10.0.0.5"),
    ([], ["10.0.0.5"], "10.0.0.5"),
  ])
  func theLeaseTheGuestHoldsWins(leases: [String], agent: [String], expected: String) {
    #expect(NodeAddressChoice.pick(leases: leases, agent: agent) == expected)
  }

  @Test func noAddressIsNone() {
    #expect(NodeAddressChoice.pick(leases: [], agent: []) == nil)
  }
}
