import Foundation
import Libvirt
import Testing

/// Every path that changes a node after its first apply, end to end on libvirtd's test driver,
/// where nodes have real overlays in Drover's (in-memory) image pool.
@Suite(.serialized) struct Day2CLITests {
  @Test func updatesKeepTheDiskAndRestartOnlyForResources() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2u")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let first = try h.nodes(pool)
    #expect(first.count == 2 && first.allSatisfy { $0.disks.count == 1 }, "test-driver nodes have disks: \(first)")
    try h.expectOverlaysMatchDomains(pool, "created")

    // Labels: in place, no restart, same disk, same generation; drift stays clean.
    try h.writePool(pool, replicas: 2, extra: "labels: {team: sre}\n")
    let labelPlan = try h.run(["plan"])
    #expect(labelPlan.stdout.contains("labels (in place)"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let labelled = try h.nodes(pool)
    #expect(labelled.map(\.uuid) == first.map(\.uuid) && labelled.map(\.id) == first.map(\.id), "not restarted")
    #expect(labelled.map(\.disks) == first.map(\.disks) && labelled.map(\.generation) == [1, 1])
    #expect(try h.run(["drift"]).status == 0)

    // Memory: restart on the same disk, same generation.
    try h.writePool(pool, replicas: 2, extra: "labels: {team: sre}\nresources: {memory: 384MiB, vcpu: 2}\n")
    #expect(try h.run(["plan"]).stdout.contains("(restarts the node, same disk)"))
    let resize = try h.run(["apply", "--auto-approve"])
    #expect(resize.status == 0, "\(resize.stdout)\(resize.stderr)")
    let resized = try h.nodes(pool)
    #expect(resized.map(\.uuid) == first.map(\.uuid))
    #expect(zip(resized, first).allSatisfy { $0.id != $1.id }, "restarted")
    #expect(resized.map(\.disks) == first.map(\.disks), "the same disk, never a new overlay")
    #expect(resized.allSatisfy { $0.memoryKiB == 384 * 1024 && $0.vcpu == 2 && $0.generation == 1 })
    try h.expectOverlaysMatchDomains(pool, "resized")
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    #expect(try h.run(["drift"]).status == 0)

    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty, "scale to 0 leaves no overlay")
  }

  @Test func replaceAndDiskChangesReallyReplace() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2r")
    try h.writePool(pool, replicas: 3, extra: "upgrade: {canary: 1, waves: [2]}\n")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let before = try h.nodes(pool)

    let replace = try h.run(["apply", "--auto-approve", "--replace", "\(pool)-3"])
    #expect(replace.status == 0, "\(replace.stdout)\(replace.stderr)")
    #expect(replace.stdout.contains("1 added, 0 changed, 1 destroyed"))
    let after = try h.nodes(pool)
    #expect(after.count == 3)
    #expect(after[2].uuid != before[2].uuid && after[2].generation == 2, "a new domain, the next generation")
    #expect(after[2].disks != before[2].disks, "with a new overlay")
    #expect(Array(after.prefix(2)) == Array(before.prefix(2)), "the others untouched")
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0, "the next plan is empty")
    try h.expectOverlaysMatchDomains(pool, "replaced")

    // --replace also accepts the domain's surge name, as drift prints it.
    let named = try h.run(["apply", "--auto-approve", "--replace", after[2].name])
    let renamed = try h.nodes(pool)
    #expect(named.status == 0 && renamed[2].generation == 3)

    try h.writePool(pool, replicas: 3, extra: "upgrade: {canary: 1, waves: [2]}\nresources: {disk: 2GiB}\n")
    let disk = try h.run(["apply", "--auto-approve"])
    #expect(disk.status == 0, "\(disk.stdout)\(disk.stderr)")
    #expect(disk.stdout.contains("3 added, 0 changed, 3 destroyed"))
    #expect(Set(try h.nodes(pool).map(\.uuid)).isDisjoint(with: after.map(\.uuid)))
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    try h.expectOverlaysMatchDomains(pool, "disk change")

    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty)
  }

  /// An image change together with a scale-up, live; then one with a scale-down, from a saved plan.
  @Test func imageChangeWithScalingRunsEveryAction() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2m")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)

    try h.writePool(pool, replicas: 3, image: "demo@v2")
    let live = try h.run(["apply", "--auto-approve"])
    #expect(live.status == 0, "\(live.stdout)\(live.stderr)")
    #expect(live.stdout.contains("3 added, 0 changed, 2 destroyed"))
    #expect(try h.nodes(pool).map { "\($0.index) \($0.image)" } == ["1 demo@v2", "2 demo@v2", "3 demo@v2"])
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    try h.expectOverlaysMatchDomains(pool, "image + scale up")

    try h.writePool(pool, replicas: 1, image: "demo@v1")
    #expect(try h.run(["plan", "--out", "plans/mixed.plan"]).status == 0)
    let saved = try h.run(["apply", "plans/mixed.plan"])
    #expect(saved.status == 0, "\(saved.stdout)\(saved.stderr)")
    #expect(saved.stdout.contains("1 added, 0 changed, 3 destroyed"))
    #expect(try h.nodes(pool).map { "\($0.index) \($0.image)" } == ["1 demo@v1"])
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    try h.expectOverlaysMatchDomains(pool, "image + scale down")

    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func anEditedSavedPlanIsRefusedBeforeAnythingChanges() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2e")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["plan", "--out", "plans/p.plan"]).status == 0)
    let path = h.dir.appendingPathComponent("plans/p.plan")
    let text = try String(contentsOf: path, encoding: .utf8)
    try text.replacingOccurrences(of: "\"memory_mib\" : 256", with: "\"memory_mib\" : 99999").write(to: path, atomically: true, encoding: .utf8)
    let apply = try h.run(["apply", "plans/p.plan"])
    #expect(apply.status == 1)
    #expect(apply.stderr.contains("not what this Drover would do now"), "\(apply.stderr)")
    #expect(try h.nodes(pool).isEmpty, "nothing was created")

    // More edits of a CI artifact: 16 vCPU, another project, an added delete of a domain that is
    // not the project's (by UUID). Each is re-planned and refused; nothing changes.
    let bystander = try h.holder.defineDomain(
      xml: "<domain type='test'><name>other-\(pool)</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    defer { try? bystander.undefine() }
    var withDelete = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    var actions = try #require(withDelete["actions"] as? [[String: Any]])
    actions.append(["action": "delete", "pool": pool, "node": "other-\(pool)", "host": CLIHarness.uri, "reason": "edited", "uuid": bystander.uuid, "restart": false])
    withDelete["actions"] = actions
    let edits = [
      text.replacingOccurrences(of: "\"vcpu\" : 1", with: "\"vcpu\" : 16"),
      text.replacingOccurrences(of: "\"project\" : \"\(h.project)\"", with: "\"project\" : \"someone-else\""),
      String(decoding: try JSONSerialization.data(withJSONObject: withDelete), as: UTF8.self),
    ]
    for edited in edits {
      #expect(edited != text)
      try edited.write(to: path, atomically: true, encoding: .utf8)
      let refused = try h.run(["apply", "plans/p.plan"])
      #expect(
        refused.status == 1 && (refused.stderr.contains("not what this Drover would do now") || refused.stderr.contains("the plan was made for project someone-else")),
        "\(refused.stderr)")
      #expect(try h.nodes(pool).isEmpty && (try h.holder.domain(named: "other-\(pool)")) != nil, "nothing changed")
    }
  }

  @Test func aChangeMadeOutsideDroverIsPlannedAndFixed() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2o")
    try h.writePool(pool, replicas: 1)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let before = try h.nodes(pool)
    #expect(try h.virsh(["setvcpus", "\(pool)-1", "2", "--config", "--maximum"]) == 0)
    #expect(try h.virsh(["setvcpus", "\(pool)-1", "2", "--config"]) == 0)
    let plan = try h.run(["plan", "--detailed-exitcode"])
    #expect(plan.status == 2)
    #expect(plan.stdout.contains("changed outside Drover: vcpu 2 → 1"), "\(plan.stdout)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let after = try h.nodes(pool)
    #expect(after.map(\.uuid) == before.map(\.uuid) && after.map(\.disks) == before.map(\.disks) && after[0].vcpu == 1)
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    #expect(try h.run(["drift"]).status == 0)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  /// `kill -9` between creating an overlay and defining its domain, and between undefining a
  /// domain and deleting its overlay: the next plan shows the orphan, apply removes it.
  @Test(arguments: ["overlay-created#2", "domain-undefined"])
  func aCrashLeavesNoOrphanBehind(_ point: String) throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2k")
    if point.hasPrefix("domain") {
      try h.writePool(pool, replicas: 2)
      #expect(try h.run(["apply", "--auto-approve"]).status == 0)
      try h.writePool(pool, replicas: 1)
    } else {
      try h.writePool(pool, replicas: 3)
    }
    let crashed = try h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": point])
    #expect(crashed.status != 0, "killed at \(point)")
    let foreignVolume = "someone-else-\(pool).qcow2"
    let images = try #require(try h.holder.storagePool(named: "drover-images"))
    _ = try images.createVolume(
      xml: "<volume><name>\(foreignVolume)</name><capacity unit='bytes'>1048576</capacity><allocation unit='bytes'>0</allocation></volume>")
    let plan = try h.run(["plan"])
    #expect(plan.stdout.contains("that no domain uses"), "\(point): \(plan.stdout)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.expectOverlaysMatchDomains(pool, point)
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    #expect(try h.holder.storagePool(named: "drover-images")?.volume(named: foreignVolume) != nil, "a volume not named like Drover's is never touched")
    try? h.holder.storagePool(named: "drover-images")?.volume(named: foreignVolume)?.delete()
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty)
  }

  @Test func aNodeThatNeverBecameHealthyIsRecordedAndReplacedLater() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2h")
    let gate = h.dir.appendingPathComponent("healthy").path
    let health = """
      health: [{type: command, command: ["/bin/sh", "-c", "test -e \(gate)"], timeout: 300ms, interval: 100ms, retries: 0}]
      upgrade: {health_timeout: 5s}

      """
    try h.writePool(pool, replicas: 1, extra: health)
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 1)
    #expect(apply.stderr.contains("is not healthy"))
    #expect(try h.nodes(pool).map(\.healthFailed) == [true], "the failure is in the node's record")
    let plan = try h.run(["plan"])
    #expect(plan.stdout.contains("-/+ \(pool)-1") && plan.stdout.contains("failed its health check at creation"), "\(plan.stdout)")
    let drift = try h.run(["drift", "--json"])
    #expect(drift.status == 2 && drift.stdout.contains("\"kind\":\"unhealthy\"") || drift.stdout.contains("\"kind\" : \"unhealthy\""), "\(drift.stdout)")

    FileManager.default.createFile(atPath: gate, contents: nil)
    let fixed = try h.run(["apply", "--auto-approve"])
    #expect(fixed.status == 0, "\(fixed.stdout)\(fixed.stderr)")
    #expect(try h.nodes(pool).map(\.healthFailed) == [false])
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    try h.expectOverlaysMatchDomains(pool, "replaced after a failed creation")
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func aNodeThatPowersOffDuringItsHealthWaitFailsAtOnce() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("d2p")
    // The check powers the node off the first time it runs, then keeps failing: without the
    // state check Drover would wait out 4 attempts of 60 s.
    let health = """
      health: [{type: command, command: ["/bin/sh", "-c", "virsh -c \(CLIHarness.uri) destroy $DROVER_NODE >/dev/null 2>&1; exit 1"], timeout: 60s, interval: 200ms, retries: 3}]
      upgrade: {health_timeout: 10m}

      """
    try h.writePool(pool, replicas: 1, extra: health)
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 1)
    #expect(apply.stderr.contains("stopped during its health check"), "\(apply.stderr)")
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty)
  }
}
