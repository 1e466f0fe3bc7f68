import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt
import Testing

/// Records you can trust (#15), end to end through the CLI on libvirtd's test driver, where nodes
/// have real overlays: clones, copies, edits and forgeries are never acted on; keys move between
/// state folders; a pool no file declares is kept; two checkouts share one machine-wide state.
@Suite struct RecordsCLITests {
  static let ns = "https://drover.dev/xmlns/node/1"

  /// A copy of a node as `virsh dumpxml` + edit + `virsh define` makes it: a new name, no UUID
  /// (libvirt picks one), Drover's record carried along (edited by `edit` if given).
  @discardableResult
  func copy(_ h: CLIHarness, _ node: String, as name: String, edit: (String) -> String = { $0 }) throws -> Domain {
    let xml = try #require(try h.holder.domain(named: node)).xml(inactive: true)
    let copied = xml.replacingOccurrences(of: "<name>\(node)</name>", with: "<name>\(name)</name>").replacing(#/<uuid>[^<]*</uuid>/#, with: "")
    return try h.holder.defineDomain(xml: edit(copied))
  }

  /// Edits one value of a node's record in place, as a person with virsh would.
  func editRecord(_ h: CLIHarness, _ node: String, _ from: String, _ to: String) throws {
    let domain = try #require(try h.holder.domain(named: node))
    let record = try #require(try domain.metadata(namespace: Self.ns))
    let edited = record.replacingOccurrences(of: " xmlns:drover=\"\(Self.ns)\"", with: "").replacingOccurrences(of: "drover:", with: "")
      .replacingOccurrences(of: from, with: to)
    #expect(edited != record.replacingOccurrences(of: " xmlns:drover=\"\(Self.ns)\"", with: "").replacingOccurrences(of: "drover:", with: ""))
    try domain.setMetadata(edited, key: "drover", namespace: Self.ns, live: try domain.state().isActive)
  }

  func uuids(_ h: CLIHarness, _ names: [String]) throws -> [String] {
    try names.map { try #require(try h.holder.domain(named: $0)).uuid }
  }

  @Test func aClonedNodeIsRefusedAndTheRealOneIsUntouched() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rc")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let real = try uuids(h, ["\(pool)-1", "\(pool)-2"])
    let disks = try h.overlays(pool)
    let clone = try copy(h, "\(pool)-2", as: "\(pool)-2-clone")
    defer { try? clone.undefine() }

    let plan = try h.run(["plan"])
    #expect(plan.status == 1)
    #expect(plan.stderr.contains("domain \(pool)-2-clone") && plan.stderr.contains("looks like a copy of \(pool)-2") && plan.stderr.contains("Drover will not touch it"), "\(plan.stderr)")
    #expect(plan.stderr.contains("drover adopt \(pool)-2-clone"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    let drift = try h.run(["drift", "--json"])
    #expect(drift.status == 2 && drift.stdout.contains("record-mismatch"), "\(drift.stdout)")
    #expect(try uuids(h, ["\(pool)-1", "\(pool)-2"]) == real && (try h.holder.domain(named: "\(pool)-2-clone")) != nil)
    #expect(try h.overlays(pool) == disks, "no disk touched")

    try clone.undefine()
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
  }

  /// The copy edited to its own name and index once got scaled down, with the real node's disk.
  @Test func aCopyWithItsOwnNameIsRefusedAndAdoptingItNeverDeletesTheRealDisk() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rn")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let real = try uuids(h, ["\(pool)-1", "\(pool)-2"])
    let disks = try h.overlays(pool)
    try copy(h, "\(pool)-2", as: "\(pool)-3") {
      $0.replacingOccurrences(of: "name=\"\(pool)-2\"", with: "name=\"\(pool)-3\"").replacingOccurrences(of: "index=\"2\"", with: "index=\"3\"")
    }
    let plan = try h.run(["plan"])
    #expect(plan.status == 1 && plan.stderr.contains("bound to UUID") && !plan.stdout.contains("destroy"), "\(plan.stdout)\(plan.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try uuids(h, ["\(pool)-1", "\(pool)-2"]) == real && (try h.holder.domain(named: "\(pool)-3")) != nil)

    // A person takes it over on purpose; the scale-down then deletes the domain, but only the
    // volume Drover derives for node 3, never the disk it shares with node 2.
    let adopt = try h.run(["adopt", "\(pool)-3"])
    #expect(adopt.status == 0, "\(adopt.stdout)\(adopt.stderr)")
    let shrink = try h.run(["apply", "--auto-approve"])
    #expect(shrink.status == 0 && shrink.stdout.contains("\(pool)-3"), "\(shrink.stdout)\(shrink.stderr)")
    #expect(try h.holder.domain(named: "\(pool)-3") == nil)
    #expect(try uuids(h, ["\(pool)-1", "\(pool)-2"]) == real)
    #expect(try h.overlays(pool) == disks, "node 2's disk survives its copy's delete")
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty)
  }

  /// An old-style record with a recomputed (unkeyed) seal, in a project whose records are keyed.
  @Test func aForgedOldStyleRecordIsRefused() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rf")
    try h.writePool(pool, replicas: 2)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let spec = PoolSpec(name: pool, hosts: [CLIHarness.uri], replicas: 3, image: ImageRef(parsing: "demo@v1")!)
    let forged = try h.holder.defineDomain(
      xml: DomainXML.renderLegacy(NodeDefinition(ownership: desiredOwnership(spec, index: 3, digest: "", generation: 1, project: h.project)), bootsNodes: false))
    defer { try? forged.undefine() }
    try h.writePool(pool, replicas: 1)
    let plan = try h.run(["plan"])
    #expect(plan.status == 1 && plan.stderr.contains("no keyed seal while this project's records do"), "\(plan.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try h.holder.domain(named: "\(pool)-2") != nil && (try h.holder.domain(named: "\(pool)-3")) != nil, "nothing deleted")
  }

  @Test func editedProtectOrProjectNeverLetsANodeGo() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("re")
    try h.writePool(pool, replicas: 3, extra: "protect: true\n")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let real = try uuids(h, ["\(pool)-1", "\(pool)-2", "\(pool)-3"])
    try editRecord(h, "\(pool)-3", "protect=\"true\"", "protect=\"false\"")
    try editRecord(h, "\(pool)-2", "project=\"\(h.project)\"", "project=\"someone-else\"")
    try h.writePool(pool, replicas: 1)
    let plan = try h.run(["plan"])
    #expect(plan.status == 1, "\(plan.stdout)\(plan.stderr)")
    #expect(plan.stderr.contains("\(pool)-3") && plan.stderr.contains("does not verify"), "an unprotected-by-hand record is refused: \(plan.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try uuids(h, ["\(pool)-1", "\(pool)-2", "\(pool)-3"]) == real, "nothing deleted")
    #expect(try h.run(["adopt", "\(pool)-2"]).status == 1, "a record of another project is never adopted")
  }

  /// A record naming a volume that is not the node's own: even adopted on purpose, deleting the
  /// node deletes only the overlay Drover derives for it, never the volume the record names.
  @Test func aRecordNamingAForeignVolumeNeverGetsItDeleted() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rv")
    try h.writePool(pool, replicas: 1)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let precious = "precious-\(pool).qcow2"
    #expect(try CLIHarness.virsh(["vol-create-as", "drover-images", precious, "1M"]) == 0)
    defer { _ = try? CLIHarness.virsh(["vol-delete", precious, "--pool", "drover-images"]) }
    try editRecord(h, "\(pool)-1", "disk=\"", "disk=\"drover-images/\(precious)\" olddisk=\"")
    let refused = try h.run(["plan"])
    #expect(refused.status == 1 && refused.stderr.contains("does not verify"), "\(refused.stderr)")
    #expect(try h.run(["adopt", "\(pool)-1"]).status == 0)
    try h.writePool(pool, replicas: 0)
    let delete = try h.run(["apply", "--auto-approve"])
    #expect(delete.status == 0, "\(delete.stdout)\(delete.stderr)")
    #expect(try h.holder.domain(named: "\(pool)-1") == nil)
    #expect(try h.holder.storagePool(named: "drover-images")?.volumeNames().contains(precious) == true, "the named volume survives")
    #expect(try h.overlays(pool).isEmpty, "the node's own overlay is gone")
  }

  @Test func theKeyMovesBetweenStateFoldersAndWithoutItPlansAreAdvisory() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rk")
    try h.writePool(pool, replicas: 2)
    let first = try h.run(["apply", "--auto-approve"])
    #expect(first.status == 0 && first.stderr.contains("Created the key of project \(h.project)"), "\(first.stderr)")
    let key = try h.run(["key", "export"])
    #expect(key.status == 0 && key.stdout.hasPrefix("drover-key-1:\(h.project):"))
    let mode = try FileManager.default.attributesOfItem(atPath: h.dir.appendingPathComponent(".drover/key").path)[.posixPermissions] as? Int
    #expect(mode == 0o600)

    // A second state folder of the same project: no key there.
    func useState(_ dir: String) throws {
      try "project: \(h.project)\nstate: {backend: local, dir: \(dir)}\n".write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    }
    try useState(".drover2")
    let advisory = try h.run(["plan"])
    #expect(advisory.status == 0 && advisory.stderr.contains("this plan is advisory and apply refuses"), "\(advisory.stderr)")
    try h.writePool(pool, replicas: 3)
    let refused = try h.run(["apply", "--auto-approve"])
    #expect(refused.status == 1 && refused.stderr.contains("this machine has no key for it"), "\(refused.stdout)\(refused.stderr)")
    #expect(try h.nodes(pool).count == 2, "nothing created without the key")
    #expect(!FileManager.default.fileExists(atPath: h.dir.appendingPathComponent(".drover2/key").path), "no second key was made")

    let imported = try h.run(["key", "import"], stdin: key.stdout)
    #expect(imported.status == 0, "\(imported.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.nodes(pool).count == 3)

    // Through the environment, for CI; a wrong key makes every record a mismatch.
    try useState(".drover3")
    try h.writePool(pool, replicas: 4)
    let viaEnv = try h.run(["apply", "--auto-approve"], environment: ["DROVER_PROJECT_KEY": key.stdout])
    #expect(viaEnv.status == 0, "\(viaEnv.stderr)")
    #expect(try h.nodes(pool).count == 4)
    let wrong = RecordKey.generate(project: h.project).exported
    try h.writePool(pool, replicas: 1)
    let mismatch = try h.run(["apply", "--auto-approve"], environment: ["DROVER_PROJECT_KEY": wrong])
    #expect(mismatch.status == 1 && mismatch.stderr.contains("sealed with key"), "\(mismatch.stderr)")
    #expect(try h.nodes(pool).count == 4)
    let otherProject = try h.run(["plan"], environment: ["DROVER_PROJECT_KEY": RecordKey.generate(project: "other").exported])
    #expect(otherProject.status == 1 && otherProject.stderr.contains("holds the key of project 'other'"))

    try useState(".drover")
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func recordsAnOlderDroverWroteAreSealedByTheNextApply() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rl")
    let spec = PoolSpec(name: pool, hosts: [CLIHarness.uri], replicas: 2, image: ImageRef(parsing: "demo@v1")!)
    for i in 1...2 {
      let d = try h.holder.defineDomain(
        xml: DomainXML.renderLegacy(NodeDefinition(ownership: desiredOwnership(spec, index: i, digest: "", generation: 1, project: h.project)), bootsNodes: false))
      try d.start()
    }
    let before = try uuids(h, ["\(pool)-1", "\(pool)-2"])
    try h.writePool(pool, replicas: 2)
    let plan = try h.run(["plan"])
    #expect(plan.status == 0 && plan.stdout.contains("record written by an older Drover: sealed with the project key"), "\(plan.stdout)\(plan.stderr)")
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
    #expect(try uuids(h, ["\(pool)-1", "\(pool)-2"]) == before, "sealed in place")
    let record = try #require(try h.holder.domain(named: "\(pool)-1")?.metadata(namespace: Self.ns))
    #expect(record.contains(" key=\"") && record.contains(" uuid=\"\(before[0])\""))
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  /// Two checkouts of one project share the machine-wide state: locks (and so rollouts) and the key.
  @Test func twoCheckoutsOfOneProjectShareTheMachineWideState() throws {
    let a = try CLIHarness()
    let b = try CLIHarness()
    let project = a.project
    let state = ProjectSettings.defaultStateDirectory(project: project)
    defer { try? FileManager.default.removeItem(atPath: state) }
    for h in [a, b] { try "project: \(project)\n".write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8) }
    let pool = CLIHarness.unique("rs")
    try a.writePool(pool, replicas: 1)
    try b.writePool(pool, replicas: 1)
    #expect(try a.run(["apply", "--auto-approve"]).status == 0)
    #expect(FileManager.default.fileExists(atPath: state + "/key"))
    var held: PoolLock? = try PoolLock.acquire(pool: pool, directory: state + "/locks", command: "test", timeout: 0, state: .local)
    let second = try b.run(["apply", "--auto-approve"])
    #expect(second.status == 1 && second.stderr.contains("pool \(pool) is locked by"), "\(second.stderr)")
    #expect(held != nil)
    held = nil
    // A rollout killed in one checkout is the other's to see (one journal): its plan resumes it.
    try a.writePool(pool, replicas: 1, image: "demo@v2")
    try b.writePool(pool, replicas: 1, image: "demo@v2")
    let killed = try a.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:create"])
    #expect(killed.status != 0)
    let seen = try b.run(["plan"])
    #expect(seen.stdout.contains("Rollout of pool \(pool): demo@v1 → demo@v2 (resuming rollout \(pool)-"), "\(seen.stdout)\(seen.stderr)")
    #expect(!seen.stdout.contains("duplicate"))
    #expect(try b.run(["apply", "--auto-approve"]).status == 0, "the other checkout finishes it")
    #expect(try a.run(["plan", "--detailed-exitcode"]).status == 0)
    // The other checkout declares one pool less: that pool is kept, not planned away.
    try FileManager.default.removeItem(at: b.dir.appendingPathComponent("pools/\(pool).yaml"))
    let kept = try b.run(["plan", "--detailed-exitcode"])
    #expect(kept.status == 0 && kept.stdout.contains("kept"), "\(kept.stdout)\(kept.stderr)")
    try a.writePool(pool, replicas: 0)
    #expect(try a.run(["apply", "--auto-approve"]).status == 0)
  }

  /// A key is made only by an apply of the whole project, and only one readable by nobody else is used.
  @Test func theKeyIsMadeOnlyForTheWholeProjectAndMustBePrivate() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("rt")
    try h.writePool(pool, replicas: 1)
    let targeted = try h.run(["apply", "--auto-approve", "--target", pool])
    #expect(targeted.status == 1 && targeted.stderr.contains("a key is only made by an apply of the whole project"), "\(targeted.stderr)")
    #expect(try h.nodes(pool).isEmpty)
    #expect(!FileManager.default.fileExists(atPath: h.dir.appendingPathComponent(".drover/key").path))
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let keyPath = h.dir.appendingPathComponent(".drover/key").path
    chmod(keyPath, 0o644)
    let open = try h.run(["plan"])
    #expect(open.status == 1 && open.stderr.contains("no access for group or others"), "\(open.stderr)")
    chmod(keyPath, 0o600)
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func withoutAProjectFileApplyRefusesAndSaysWhy() throws {
    let h = try CLIHarness()
    try FileManager.default.removeItem(at: h.dir.appendingPathComponent("drover.yaml"))
    try h.writePool(CLIHarness.unique("rp"), replicas: 1)
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 1 && apply.stderr.contains("drover.yaml does not exist, so no project is named"), "\(apply.stderr)")
    try "project: [oops]\n".write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let bad = try h.run(["plan"])
    #expect(bad.status == 1 && bad.stderr.contains("drover.yaml:1:"), "a located error: \(bad.stderr)")
  }

  /// A rollout started elsewhere (another machine: its own journal) is visible in the records: the
  /// plan here names it and never takes its surge node for a duplicate; once it ends, the marks go.
  @Test func aRolloutRunElsewhereIsReportedFromTheRecords() throws {
    let r = try RolloutHarness()
    let h = r.h
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let key = try h.run(["key", "export"]).stdout
    try r.setImage("demo@v2")
    let crashed = try h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:health"])
    #expect(crashed.status != 0)
    #expect(try r.nodes().filter { $0.index == 1 }.count == 2, "the canary's old and new node both exist")
    let marked = try h.holder.allDomains().compactMap { try? $0.metadata(namespace: Self.ns) }.filter { $0.contains("pool=\"\(r.pool)\"") && $0.contains(" rollout=\"") }
    #expect(marked.count == 1 && marked[0].contains("rollout_phase=\"canary\""), "\(marked)")

    func useState(_ dir: String) throws {
      try "project: \(h.project)\nstate: {backend: local, dir: \(dir)}\n".write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    }
    try useState(".elsewhere")
    #expect(try h.run(["key", "import"], stdin: key).status == 0)
    let before = try r.nodes().map(\.name)
    let plan = try h.run(["plan"])
    #expect(plan.status == 1, "\(plan.stdout)\(plan.stderr)")
    #expect(plan.stderr.contains("of pool \(r.pool) is in progress (demo@v1 → demo@v2, 1 of 3 done, by "), "\(plan.stderr)")
    #expect(!plan.stdout.contains("duplicate"))
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try r.nodes().map(\.name) == before, "nothing changed")

    // Where it runs, it resumes and ends; then no record carries a mark and the other state agrees.
    try useState(".drover")
    let resumed = try h.run(["apply", "--auto-approve"])
    #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
    #expect(try h.holder.allDomains().compactMap { try? $0.metadata(namespace: Self.ns) }.filter { $0.contains("pool=\"\(r.pool)\"") }
      .allSatisfy { !$0.contains(" rollout=\"") })
    try useState(".elsewhere")
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
  }

  /// v1 → v2 killed, the spec changed to v3: plan and apply refuse (images are never mixed);
  /// `rollout resume` finishes v2 as journaled; then v3 is an ordinary rollout.
  @Test func aSpecChangedUnderAKilledRolloutIsRefusedUntilItIsFinished() throws {
    let r = try RolloutHarness()
    let h = r.h
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    #expect(try h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "node-done"]).status != 0)
    try r.setImage("demo@v3")
    try "name: demo\nversion: v3\nbase: {rootfs: busybox}\n".write(to: h.dir.appendingPathComponent("images/v3.yaml"), atomically: true, encoding: .utf8)
    let plan = try h.run(["plan"])
    #expect(plan.status == 1 && plan.stderr.contains("the spec now asks demo@v3") && plan.stderr.contains("drover rollout resume \(r.pool)"), "\(plan.stdout)\(plan.stderr)")
    let before = try r.nodes().map(\.name)
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try r.nodes().map(\.name) == before, "nothing changed")
    let resumed = try h.run(["rollout", "resume", r.pool])
    #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
    #expect(try r.nodes().allSatisfy { $0.image == "demo@v2" }, "the journaled rollout finished as journaled")
    let next = try h.run(["plan"])
    #expect(next.status == 0 && next.stdout.contains("Rollout of pool \(r.pool): demo@v2 → demo@v3"), "\(next.stdout)\(next.stderr)")
  }
}
