import DroverBake
import DroverBasics
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt
import Synchronization
import Testing

/// Real bakes on `qemu:///system` (TCG build VMs), in a scratch image pool.
@Suite(.serialized, .enabled(if: QemuSystem.available, "needs qemu:///system (run scripts/setup)"))
final class BakeSystemTests {
  let dir: String
  let pool: String
  let backend: LibvirtHostBackend
  let recipeDir: String

  init() throws {
    let id = "\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    dir = "/var/lib/drover/test-images-\(id)"
    pool = "drover-test-\(id)"
    backend = try LibvirtHostBackend.connect(
      "qemu:///system", keyring: Keyring(project: "bake-tests", key: RecordKey(bytes: Array(repeating: 3, count: 32), project: "bake-tests")), timeout: 60,
      imagePool: pool)
    recipeDir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-recipe-\(id)").path
    try FileManager.default.createDirectory(atPath: recipeDir, withIntermediateDirectories: true)
    try "#!/bin/busybox sh\n/bin/busybox --install -s /bin\necho \"DROVER READY $(cat /etc/drover-version)\"\nexec sh -c 'while :; do sleep 3600; done'\n"
      .write(toFile: recipeDir + "/init", atomically: true, encoding: .utf8)
    try "test-1\n".write(toFile: recipeDir + "/version", atomically: true, encoding: .utf8)
  }

  deinit {
    if let p = try? backend.connection.storagePool(named: pool) {
      try? p.stop()
      try? p.undefine()
    }
    try? FileManager.default.removeItem(atPath: dir)
    try? FileManager.default.removeItem(atPath: recipeDir)
  }

  func recipe(commands: [String] = ["echo baked > /etc/baked"], timeout: TimeSpan = .minutes(2)) -> ImageRecipe {
    ImageRecipe(
      name: "systest", version: "v1", base: .rootfs("busybox"),
      files: [
        ImageRecipe.File(source: "init", path: "/init", mode: 0o755), ImageRecipe.File(source: "version", path: "/etc/drover-version", mode: 0o644),
      ], commands: commands, commandTimeout: timeout, kernel: "/vmlinuz", cmdline: "console=ttyS0 panic=-1 quiet", size: .mebibytes(32))
  }

  func baker(stop: @escaping @Sendable () -> Bool = { false }, events: @escaping @Sendable (BakeEvent) -> Void = { _ in }) -> Baker {
    Baker(
      imageDirectory: dir, poolName: pool, host: backend, stateDirectory: dir + "/.state",
      hostPaths: HostPathPolicy(project: nil, allowed: ["/vmlinuz", "/boot"]), shouldStop: stop, onEvent: events)
  }

  func leftovers() throws -> [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    let staging = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/.staging")) ?? []
    return files.filter { $0.hasPrefix("systest") } + staging + (try buildMachines())
  }

  /// Build machines of either kind: local QEMU processes (what bakes on qemu:///system use) and
  /// libvirt domains (remote hosts, or DROVER_BUILD_MACHINES=libvirt).
  func buildMachines() throws -> [String] {
    try LocalBuildMachines(imageDirectory: dir).buildMachineNames() + backend.buildMachineNames()
  }

  @Test func bakeBootCacheHitRebuildAndTamper() throws {
    let first = try baker().bake(recipe(), recipeDirectory: recipeDir)
    #expect(!first.cacheHit && first.machinesBooted == 1)
    #expect(first.manifest.timings["commands"] ?? 0 > 0)
    #expect(FileManager.default.fileExists(atPath: "\(dir)/\(first.manifest.artifact)"))
    #expect(try FileDigestCache.sha256(ofFile: "\(dir)/\(first.manifest.artifact)") == first.manifest.artifactSHA256)
    #expect(try buildMachines().isEmpty, "the build VM is always removed")

    let hit = try baker().bake(recipe(), recipeDirectory: recipeDir)
    #expect(hit.cacheHit && hit.machinesBooted == 0 && hit.manifest.key == first.manifest.key)

    // A node boots from an overlay of it to its ready marker.
    let catalogue = ImageCatalogue(directory: dir)
    let images = NodeImages(catalogue: catalogue, poolName: pool, consoleDirectory: dir + "/console")
    let spec = PoolSpec(name: "bakesys\(getpid() % 10000)", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "systest@v1")!)
    var node = NodeDefinition(ownership: desiredOwnership(spec, index: 1, digest: first.manifest.key, generation: 1, project: "bake-tests"))
    node = try images.prepare(node, host: backend)
    #expect(node.ownership.disk == "\(pool)/drover.bake-tests.\(spec.name)-1.g1.qcow2")
    let overlay = "\(dir)/drover.bake-tests.\(spec.name)-1.g1.qcow2"
    let info = try ProcessRunner().run(["/usr/bin/qemu-img", "info", "--output=json", "-U", overlay]).stdout
    #expect(info.contains(first.manifest.artifact) && info.contains("\"backing-filename-format\": \"qcow2\""), "an overlay, never a copy")
    try backend.create(node)
    let console = "\(dir)/console/\(spec.name)-1.log"
    let deadline = Date().addingTimeInterval(90)
    var ready = false
    while Date() < deadline && !ready {
      ready = (try? String(contentsOfFile: console, encoding: .isoLatin1))?.contains("DROVER READY test-1") ?? false
      if !ready { Thread.sleep(forTimeInterval: 0.5) }
    }
    #expect(ready, "the node printed its ready marker")
    let uuid = try #require(try backend.connection.domain(named: "\(spec.name)-1")).uuid
    try backend.delete(node: "\(spec.name)-1", uuid: uuid)
    #expect(!FileManager.default.fileExists(atPath: overlay), "deleting a node deletes its overlay")

    // Changing one input file rebuilds.
    try "test-2\n".write(toFile: recipeDir + "/version", atomically: true, encoding: .utf8)
    let rebuilt = try baker().bake(recipe(), recipeDirectory: recipeDir)
    #expect(!rebuilt.cacheHit && rebuilt.manifest.key != first.manifest.key)

    // A tampered image is refused before any node is defined from it.
    let path = "\(dir)/\(rebuilt.manifest.artifact)"
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.seek(toOffset: 70_000)
    let byte = try #require(try handle.read(upToCount: 1)).first!
    try handle.seek(toOffset: 70_000)
    try handle.write(contentsOf: Data([byte ^ 0xFF]))
    try handle.close()
    let fresh = NodeImages(catalogue: ImageCatalogue(directory: dir), poolName: pool, consoleDirectory: dir + "/console")
    var node2 = NodeDefinition(ownership: desiredOwnership(spec, index: 2, digest: rebuilt.manifest.key, generation: 1, project: "bake-tests"))
    node2.ownership.image = "systest@v1"
    let error = #expect(throws: Diagnostic.self) { try fresh.prepare(node2, host: self.backend) }
    #expect(error?.code == "image.tampered")
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/drover.bake-tests.\(spec.name)-2.g1.qcow2"))
  }

  /// A build machine left by a killed Drover (another process: only its pid file is known) is
  /// found through the pid file, checked against its command line, and stopped.
  @Test func aLeftoverLocalBuildMachineIsFoundAndStopped() throws {
    let baked = try baker().bake(recipe(), recipeDirectory: recipeDir)
    let root = dir + "/leftover"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let machines = root + "/.machines"
    let name = "drover-build-leftover"
    try LocalBuildMachines(imageDirectory: root).bootBuildMachine(
      BuildMachine(name: name, kernel: baked.manifest.kernel, initrd: baked.manifest.initrd, cmdline: "console=ttyS0 quiet", disks: [], consoleLog: machines + "/console.log"))
    let pid = try #require(pid_t(try String(contentsOfFile: "\(machines)/\(name).pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    let other = LocalBuildMachines(imageDirectory: root)  // knows nothing but the folder
    #expect(try other.buildMachineNames() == [name])
    try other.removeBuildMachine(name: name)
    #expect(try other.buildMachineNames().isEmpty)
    let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).map { $0.split(separator: " ")[2] } ?? "gone"
    #expect(state == "gone" || state == "Z", "QEMU was stopped (a zombie until its parent reaps it)")
    #expect(!FileManager.default.fileExists(atPath: "\(machines)/\(name).pid"))
  }

  /// #16: a second bake in the same image folder took the first's live build machine for a
  /// leftover and stopped it; the first then reported a false timeout. Now a live bake's
  /// machine and staging folder are its own, and a second bake of the same image waits for the
  /// first and answers from its image.
  @Test func concurrentBakesInOneImageFolderNeverTouchEachOther() throws {
    var otherRecipe = recipe(commands: ["echo other > /etc/other"])
    otherRecipe.name = "systest-other"
    let other = otherRecipe
    let first = recipe(commands: ["sleep 4", "echo first > /etc/first"])
    let results = Mutex<[String: Result<BakeResult, Diagnostic>]>([:])
    let firstBaker = baker(), dir = self.recipeDir
    let a = Thread {
      let r = Result { try firstBaker.bake(first, recipeDirectory: dir) }.mapError { $0 as? Diagnostic ?? .error("x", "\($0)") }
      results.withLock { $0["first"] = r }
    }
    a.start()
    // Once the first bake's build machine runs, start the others.
    var running = false
    for _ in 0..<600 where !running {
      running = !(try buildMachines()).isEmpty
      if !running { Thread.sleep(forTimeInterval: 0.05) }
    }
    #expect(running, "the first bake booted its build machine")
    let secondBaker = baker()
    let b = Thread {
      let r = Result { try secondBaker.bake(other, recipeDirectory: dir) }.mapError { $0 as? Diagnostic ?? .error("x", "\($0)") }
      results.withLock { $0["other"] = r }
    }
    b.start()
    let same = try baker().bake(first, recipeDirectory: recipeDir)  // waits for the first, then its cache
    while results.withLock({ $0.count }) < 2 { Thread.sleep(forTimeInterval: 0.05) }
    let done = results.withLock { $0 }
    guard case .success(let firstResult)? = done["first"], case .success(let otherResult)? = done["other"] else {
      Issue.record("a bake failed: \(done)")
      return
    }
    #expect(firstResult.machinesBooted == 1 && otherResult.machinesBooted == 1)
    #expect(same.cacheHit && same.machinesBooted == 0 && same.manifest.key == firstResult.manifest.key, "the same image was built once")
    #expect(try buildMachines().isEmpty)
  }

  /// #16: a planted `.staging` or `.machines` link made a bake delete files elsewhere.
  @Test(arguments: [".staging", ".machines", "logs"])
  func aPlantedLinkInTheImageFolderIsRefusedNeverFollowed(_ folder: String) throws {
    let outside = FileManager.default.temporaryDirectory.appendingPathComponent("drover-outside-\(UInt32.random(in: 0..<UInt32.max))").path
    try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: outside) }
    // Names a leftover sweep would remove: a dead pid's staging entry, a build machine's pid file.
    for name in ["0123456789ab-1", "drover-build-0123456789ab.pid", "keep.txt"] {
      try "precious".write(toFile: outside + "/" + name, atomically: true, encoding: .utf8)
    }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: dir + "/" + folder, withDestinationPath: outside)
    let error = #expect(throws: Diagnostic.self) { try self.baker().bake(self.recipe(), recipeDirectory: self.recipeDir) }
    #expect(error?.code == "io.unsafe-folder", "\(String(describing: error))")
    #expect(Set(try FileManager.default.contentsOfDirectory(atPath: outside)) == ["0123456789ab-1", "drover-build-0123456789ab.pid", "keep.txt"])
    try FileManager.default.removeItem(atPath: dir + "/" + folder)
  }

  @Test func failingAndInterruptedBakesLeaveNothingBehind() throws {
    let failing = #expect(throws: Diagnostic.self) { try self.baker().bake(self.recipe(commands: ["echo about to fail", "exit 3"]), recipeDirectory: self.recipeDir) }
    #expect(failing?.code == "bake.step-failed")
    #expect(failing?.message.contains("status 3") == true)
    #expect(try leftovers().isEmpty)

    final class Flag: @unchecked Sendable { var set = false }
    let flag = Flag()
    let interrupted = #expect(throws: Diagnostic.self) {
      try self.baker(stop: { flag.set }, events: { if case .console(let line) = $0, line.contains("DROVER-BUILD-START") { flag.set = true } })
        .bake(self.recipe(commands: ["sleep 30"]), recipeDirectory: self.recipeDir)
    }
    #expect(interrupted?.code == "bake.interrupted")
    #expect(try leftovers().isEmpty, "no partial image, no staging folder, no build VM")
  }

  @Test func importedBaseWithABackingFileIsRefused() throws {
    let base = recipeDir
    let runner = ProcessRunner()
    try runner.run(["/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "\(base)/root.qcow2", "16M"])
    try runner.run(["/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "\(base)/root.qcow2", "\(base)/layered.qcow2"])
    let sha = try FileDigestCache.sha256(ofFile: "\(base)/layered.qcow2")
    var r = recipe(commands: [])
    r.base = .file(path: "layered.qcow2", sha256: sha)  // beside the recipe: inside the project
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let foreign = "\(dir)/someone-elses.qcow2"
    try "keep me".write(toFile: foreign, atomically: true, encoding: .utf8)
    let error = #expect(throws: Diagnostic.self) { try self.baker().bake(r, recipeDirectory: self.recipeDir) }
    #expect(error?.code == "bake.base-backing")
    r.base = .file(path: "layered.qcow2", sha256: String(repeating: "0", count: 64))
    #expect((#expect(throws: Diagnostic.self) { try self.baker().bake(r, recipeDirectory: self.recipeDir) })?.code == "bake.base-checksum")
    try "not an image".write(toFile: "\(base)/fake.qcow2", atomically: true, encoding: .utf8)
    r.base = .file(path: "fake.qcow2", sha256: try FileDigestCache.sha256(ofFile: "\(base)/fake.qcow2"))
    #expect((#expect(throws: Diagnostic.self) { try self.baker().bake(r, recipeDirectory: self.recipeDir) })?.code == "bake.base-format")
    #expect(FileManager.default.fileExists(atPath: foreign), "a file Drover did not make is never cleaned up")
    // #16: a base file outside the project and the allowed roots is never read.
    r.base = .file(path: "\(base)/layered.qcow2", sha256: sha)
    let outside = #expect(throws: Diagnostic.self) { try self.baker().bake(r, recipeDirectory: "/nonexistent/project/images") }
    #expect(outside?.code == "bake.input" && outside?.message.contains("outside the project") == true, "\(String(describing: outside))")
  }
}

/// Whether `qemu:///system` answers (set up by scripts/setup).
/// Whether the real-VM system tests run: `qemu:///system` answers and the developer did not ask
/// for the fast suite alone (`bash scripts/test --fast` sets `DROVER_SKIP_VM_TESTS=1`; CI runs all).
enum QemuSystem {
  static let available: Bool = {
    ProcessInfo.processInfo.environment["DROVER_SKIP_VM_TESTS"] != "1" && (try? Connection.open("qemu:///system", timeout: 30)) != nil
  }()
}

/// The README's main job as a system test: `scripts/demo` against the built binary on
/// `qemu:///system`, with a foreign domain present that must stay untouched. It lives in this
/// serialized suite so real VMs from different tests never compete for the two cores.
extension BakeSystemTests {
  @Test func theDemoRunsEndToEndAndLeavesNothingBehind() throws {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let foreignName = "not-drovers-\(getpid())"
    let foreign = try backend.connection.defineDomain(xml: """
      <domain type='qemu'><name>\(foreignName)</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os></domain>
      """)
    defer { try? foreign.undefine() }
    let foreignXML = try foreign.xml()

    let (status, output) = try DroverProcess.run(
      "/bin/bash", [repo.appendingPathComponent("scripts/demo").path, "--no-setup"],
      environment: ["DROVER": repo.appendingPathComponent(".build/debug/drover").path])
    #expect(status == 0, "\(output.suffix(3000))")
    // Its own names, from the run id it starts with.
    let run = try #require(output.components(separatedBy: "Drover demo, run ").dropFirst().first?.prefix(4).description)
    let pool = "web-\(run)"
    #expect(output.contains("project drover-demo-\(run), pool \(pool)"))
    // Each command is shown before it runs; libvirt's polkit notice is not.
    #expect(output.contains("$ drover plan --detailed-exitcode --out plans/create.plan") && output.contains("$ drover apply plans/v3.plan"))
    #expect(!output.contains("Authorization not available"))
    #expect(output.contains("cache hit (inputs unchanged, nothing rebuilt, no VM booted)"))
    #expect(output.contains("console markers: \(pool)-1=v1"), "every node reached the v1 ready marker")
    #expect(output.contains("console markers: \(pool)-1-g2=v2 \(pool)-2-g2=v2 \(pool)-3-g2=v2"), "the rollout left every node ready on v2")
    // #43: one analysis gate, measured in the demo's own Prometheus after the canary and the wave.
    #expect(output.contains("error-ratio: pass: \(pool)-1-g2: 0.001 meets < 0.05"), "the canary's error ratio was measured")
    #expect(output.contains("analysis of wave 1 passed"), "and the wave's")
    #expect(output.contains("\(pool)-1: FAILED: console check"), "the v3 canary failed its health check")
    #expect(output.contains("still waiting for console check"), "the broken canary's wait is not silent")
    #expect(output.contains("the pool is back on demo@v2: \(pool)-1-g2=v2 \(pool)-2-g2=v2 \(pool)-3-g2=v2"), "rollback left the pool on v2")
    #expect(output.contains("Apply stopped: a rollout did not complete. Nodes: 1 added, 0 changed, 1 destroyed."), "the rollback's canary counted")
    #expect(output.contains("drift found the vCPU change"))
    // #51: one repair hint: the demo prints the one `drover drift` gives for that change.
    #expect(output.contains("its repair, as drift says: drover apply --target \(pool)-"), "\(output.suffix(2000))")
    #expect(output.contains("fix:      drover apply --target \(pool)-") && output.contains("# restarts it, same disk"), "drift's own text says the same")
    // The summary: each step and its time, and the rollouts.
    let summary = output.components(separatedBy: "==> summary of demo run \(run)").last ?? ""
    for step in ["1. validate", "2. plan", "3. roll the pool", "4. a broken demo@v3", "5. drift", "6. clean up"] { #expect(summary.contains(step), "\(step): \(summary)") }
    #expect(summary.contains("rolled-back") && summary.contains("completed"), "\(summary)")
    #expect(try foreign.xml() == foreignXML, "the foreign domain was not changed")
    let leftovers = try backend.connection.allDomains().filter {
      (try? $0.metadata(namespace: OwnershipMetadata.namespace))?.contains("project=\"drover-demo-\(run)\"") ?? false
    }
    #expect(leftovers.isEmpty, "no demo node left")
    #expect(try backend.connection.storagePool(named: "drover-demo-\(run)") == nil, "no demo pool left")
    #expect(!FileManager.default.fileExists(atPath: "/var/lib/drover/demo-\(run)"))
  }
}
