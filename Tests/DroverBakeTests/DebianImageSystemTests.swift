import DroverBake
import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #18: a Debian image baked from packages (mmdebstrap, the machine's apt sources) boots its own
/// kernel and initrd on real VMs; a v2 that changes one file reuses the package layer and rolls
/// the pool. A package that does not exist and an image without a kernel are located errors
/// that leave nothing behind. Slow: one package layer (~100 s) and Debian boots under TCG.
extension BakeSystemTests {
  final class DebianProject: VMTestProject {
    /// The shipped example's packages (examples/debian; ExampleSpecsTests keeps them equal).
    static let packages = "[systemd-sysv, linux-image-amd64, openssh-server, cloud-init, qemu-guest-agent, ifupdown, dbus, sudo]"
    /// The public key the pool's nodes accept (its private half is never used here).
    var publicKey = ""

    init() throws {
      try super.init("deb")
      // The drain hook runs a command on the node it drains, over SSH with its pinned host key.
      try "\"$DROVER_NODE_SSH\" 'echo drained $(hostname) $(cat /etc/drover-version)' >> \(dir.path)/drained\n"
        .write(to: dir.appendingPathComponent("drain.sh"), atomically: true, encoding: .utf8)
      // systemd runs an executable /etc/rc.local at boot: the guest says which version it is.
      try "#!/bin/sh\necho \"DROVER VERSION $(cat /etc/drover-version) on $(uname -r)\" > /dev/ttyS0\nexit 0\n"
        .write(to: dir.appendingPathComponent("images/files/rc.local"), atomically: true, encoding: .utf8)
      for version in ["v1", "v2"] {
        try "\(version)\n".write(to: dir.appendingPathComponent("images/files/version-\(version)"), atomically: true, encoding: .utf8)
        try recipe(
          "deb", version,
          base: "{debian: bookworm, packages: \(Self.packages)}",
          extra: "files: [{source: files/rc.local, path: /etc/rc.local, mode: \"0755\"}, {source: files/version-\(version), path: /etc/drover-version}]")
      }
    }

    func recipe(_ name: String, _ version: String, base: String, extra: String = "") throws {
      try "name: \(name)\nversion: \(version)\nbase: \(base)\n\(extra)\n"
        .write(to: dir.appendingPathComponent("images/\(name)-\(version).yaml"), atomically: true, encoding: .utf8)
    }

    func pool(replicas: Int, image: String, extra: String = "") throws {
      try """
        name: deb
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        resources: {memory: 768MiB, disk: 2GiB}
        health:
          - {type: console, pattern: "DROVER READY", timeout: 300s, interval: 1s, retries: 0}
          - {type: ssh, command: "cat /etc/drover-version", output: "^v[12]$", timeout: 120s, interval: 2s, retries: 0}
        upgrade: {canary: 1, waves: [1], max_surge: 1, max_unavailable: 0, health_timeout: 400s}
        drain: {type: command, drain: "/bin/sh \(dir.path)/drain.sh", timeout: 60s}
        network: default
        access: {ssh_keys: ["\(publicKey)"]}
        cloud_init:
          user_data: |
            #cloud-config
            runcmd:
              - echo "POOL PART $(hostname)" > /dev/ttyS0
        \(extra)
        """.write(to: dir.appendingPathComponent("pools/deb.yaml"), atomically: true, encoding: .utf8)
    }

    /// Every console log of the project's nodes, joined.
    func consoles() -> String {
      let names = (try? FileManager.default.contentsOfDirectory(atPath: consoleDir)) ?? []
      return names.sorted().map { (try? String(contentsOfFile: "\(consoleDir)/\($0)", encoding: .isoLatin1)) ?? "" }.joined(separator: "\n")
    }

    func manifest(_ prefix: String) throws -> ImageManifest {
      let catalogue = ImageCatalogue(directory: imageDir)
      return try #require(catalogue.manifests.first { $0.reference == prefix })
    }

    var stateDir: String { "/var/lib/drover/state/\(project)" }
    var pins: String { (try? String(contentsOfFile: "\(stateDir)/ssh/known_hosts.\(project)", encoding: .utf8)) ?? "" }

    /// Runs `command` on a node through the wrapper hooks get, with its pinned host key, at the
    /// address Drover would use: the lease the guest agent confirms when the node's MAC holds
    /// several (the example's nodes have the same names, so the same MACs, in every run: an
    /// earlier run's lease lingers for an hour).
    func onNode(_ domain: Domain, alias: String, at fixed: String? = nil, _ command: String) throws -> (status: Int32, output: String) {
      let leases = (try? domain.ipv4Addresses()) ?? []
      let agent = leases.count > 1 ? ((try? domain.ipv4Addresses(from: .agent)) ?? []) : []
      let address = try #require(fixed ?? NodeAddressChoice.pick(leases: leases, agent: agent), "the node has a lease")
      return try DroverProcess.run(
        "\(stateDir)/ssh/node-ssh", [command], in: dir, environment: ["DROVER_NODE_IP": address, "DROVER_NODE_HOSTKEY_ALIAS": alias])
    }

    /// The repository's `examples/debian`, copied as the README tells a user to use it: its files
    /// unchanged but for the public key put in place of the placeholder.
    func shippedExample(publicKey: String) throws -> URL {
      let target = dir.appendingPathComponent("example")
      try FileManager.default.copyItem(at: Self.shippedExampleDir, to: target)
      let pool = target.appendingPathComponent("pools/debian.yaml")
      let text = try String(contentsOf: pool, encoding: .utf8)
      #expect(text.components(separatedBy: Self.placeholderKey).count == 2, "the README's placeholder key is in the shipped pool")
      try text.replacingOccurrences(of: Self.placeholderKey, with: publicKey).write(to: pool, atomically: true, encoding: .utf8)
      return target
    }

    static let shippedExampleDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("examples/debian")
    static let placeholderKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE6x1B3y3hYbYbDWbQfXq9mUuY1dlX2rWkC9tQ9sQ0aS replace-me@example"

    /// Every file the run used is the shipped one (the pool with only its key replaced), and the
    /// run used every shipped file: a changed example fails here until this test runs it.
    func expectShippedExampleUnchanged(_ used: URL, publicKey: String) throws {
      let shipped = try Self.files(under: Self.shippedExampleDir), ran = try Self.files(under: used)
      #expect(Set(shipped.keys).isSubset(of: Set(ran.keys)), "\(shipped.keys.sorted()) \(ran.keys.sorted())")
      for (path, bytes) in shipped {
        let expected = path == "pools/debian.yaml" ? Data(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: Self.placeholderKey, with: publicKey).utf8) : bytes
        #expect(ran[path] == expected, "\(path) differs from the shipped example")
      }
    }

    static func files(under root: URL) throws -> [String: Data] {
      var out: [String: Data] = [:]
      let enumerator = FileManager.default.enumerator(atPath: root.path)
      while let relative = enumerator?.nextObject() as? String {
        var isDir: ObjCBool = false
        let full = root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue, !relative.hasPrefix("plans/") else { continue }
        out[relative] = try Data(contentsOf: URL(fileURLWithPath: full))
      }
      return out
    }

    /// Removes the example's nodes so this test's own pool (also `deb`) starts from none.
    func scaleToZero(_ example: URL) throws {
      let pool = example.appendingPathComponent("pools/debian.yaml")
      let text = try String(contentsOf: pool, encoding: .utf8).replacingOccurrences(of: "\nreplicas: 2\n", with: "\nreplicas: 0\n")
      try text.write(to: pool, atomically: true, encoding: .utf8)
      let removed = try run(["apply", "--auto-approve"], in: example)
      #expect(removed.status == 0, "\(removed.output)")
    }

    /// Powers `node` off the way its guest does on the ACPI button (its disk synced), within 2 min.
    func shutDown(_ node: Domain) throws {
      try node.shutdown()
      var off = false
      for _ in 0..<120 where !off {
        Thread.sleep(forTimeInterval: 1)
        off = (try? node.state()) == .shutoff
      }
      #expect(off, "\(node.name) powered off on virsh shutdown")
    }

    /// Waits up to 4 min for `node` to answer over SSH, reading its address afresh each time (a
    /// clean shutdown releases its lease: right after a start it has none).
    func answersOverSSH(_ node: Domain) -> Bool {
      let alias = "\(node.name).\(node.uuid.lowercased())"
      for _ in 0..<120 {
        if let answer = try? onNode(node, alias: alias, "true"), answer.status == 0 { return true }
        Thread.sleep(forTimeInterval: 2)
      }
      return false
    }

    /// #37: nodes restarted on their own disks. `deb-1` is restarted outside Drover (virsh
    /// shutdown, virsh start); `deb-2` is shut down and `drover apply` starts it, which passes its
    /// console check only because the ready marker is said on every boot. Then a fresh state
    /// folder — another machine, with the project key and no pins — heals: both nodes are
    /// verified from the host keys sealed in their domain records (the restarted consoles no
    /// longer show them), their ssh beats count, nothing is replaced.
    func expectRestartedNodesVerifiedFromAFreshStateFolder(_ nodes: [Domain], uuids: [String]) throws {
      let heartbeat = "heartbeat: {source: ssh, command: 'true', interval: 2s, missed: 2}\nremediation: {unhealthy_after: 1h, max_unhealthy: 0}"
      try pool(replicas: 2, image: "deb@v1", extra: heartbeat)
      for node in nodes { try shutDown(node) }
      try nodes[0].start()
      let started = try run(["apply", "--auto-approve"])
      #expect(started.status == 0 && started.output.contains("deb-2 on qemu:///system: started") && started.output.contains("deb-2 on qemu:///system: healthy"), "\(started.output)\n\(consoles().suffix(3000))")
      #expect(!started.output.contains("deb-1 on"), "deb-1 was started outside Drover: \(started.output)")
      for node in nodes {
        #expect(answersOverSSH(node), "\(node.name) answers over SSH after its restart: \(consoles().suffix(2000))")
        // SSH answers before cloud-init's final stage says the marker: waited for, bounded.
        var console = ""
        for _ in 0..<360 {
          console = (try? String(contentsOfFile: "\(consoleDir)/\(node.name).log", encoding: .isoLatin1)) ?? ""
          if console.contains("DROVER READY \(node.name) \(node.name)-g1") { break }
          Thread.sleep(forTimeInterval: 0.5)
        }
        #expect(console.contains("DROVER READY \(node.name) \(node.name)-g1"), "ready again on its second boot: \(console.suffix(1500))")
        #expect(!console.contains("BEGIN SSH HOST KEY"), "its restarted console no longer shows its keys: \(console.suffix(1500))")
      }
      let exported = try run(["key", "export"])
      #expect(exported.status == 0, "\(exported.output)")
      let elsewhere = dir.appendingPathComponent("elsewhere")
      // Its own state folder, inside that checkout (drover.yaml keeps its folders in the project).
      let freshState = elsewhere.appendingPathComponent("state").path
      try FileManager.default.createDirectory(at: elsewhere.appendingPathComponent("pools"), withIntermediateDirectories: true)
      try FileManager.default.copyItem(at: dir.appendingPathComponent("pools/deb.yaml"), to: elsewhere.appendingPathComponent("pools/deb.yaml"))
      try FileManager.default.copyItem(at: dir.appendingPathComponent("images"), to: elsewhere.appendingPathComponent("images"))
      try "project: \(project)\nstate: {backend: local, dir: state}\n".write(to: elsewhere.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
      let env = environment.merging(["DROVER_PROJECT_KEY": exported.output.trimmingCharacters(in: .whitespacesAndNewlines)]) { $1 }
      let first = try DroverProcess.run(binary, ["heal"], in: elsewhere, environment: env.mapValues { $0 })
      #expect(first.status == 0, "\(first.output)")
      Thread.sleep(forTimeInterval: 5)
      let beat = try DroverProcess.run(binary, ["heal", "--json"], in: elsewhere, environment: env.mapValues { $0 })
      #expect(beat.status == 0 && beat.output.components(separatedBy: "\"condition\":\"healthy\"").count == 3, "\(beat.output)")
      #expect(!beat.output.contains("\"replace\":[\""), "nothing replaced: \(beat.output)")
      let pins = (try? String(contentsOfFile: "\(freshState)/ssh/known_hosts.\(project)", encoding: .utf8)) ?? ""
      #expect(uuids.allSatisfy { pins.contains("\($0) ssh-ed25519 ") }, "the fresh folder's pins came from the records: \(pins)")
      // The same domains, on their own disks.
      for (node, alias) in zip(nodes, uuids) { #expect(alias.hasSuffix(node.uuid.lowercased())) }
      try? FileManager.default.removeItem(atPath: freshState)
    }

    func cleanUp(_ connection: Connection) {
      try? pool(replicas: 0, image: "deb@v1")
      _ = try? run(["apply", "--auto-approve"])
      removeAll(connection)
      try? FileManager.default.removeItem(atPath: stateDir)
    }
  }

  @Test func aDebianImageFromPackagesBootsItsOwnKernelAndRollsWithItsLayerReused() throws {
    let p = try DebianProject()
    defer { p.cleanUp(backend.connection) }
    let keyFile = p.dir.appendingPathComponent("id_ed25519").path
    #expect(try DroverProcess.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "drover-test", "-f", keyFile], in: p.dir, environment: [:]).status == 0)
    p.publicKey = try String(contentsOfFile: keyFile + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

    // A package that does not exist: located at the recipe's base, nothing left behind.
    try p.recipe("bad", "v1", base: "{debian: bookworm, packages: [systemd-sysv, drover-no-such-package]}")
    let bad = try p.run(["bake", "bad@v1"])
    #expect(bad.status == 1, "\(bad.output)")
    #expect(bad.output.contains("images/bad-v1.yaml:3:7") && bad.output.contains("package drover-no-such-package not found in Debian bookworm"), "\(bad.output)")
    try FileManager.default.removeItem(at: p.dir.appendingPathComponent("images/bad-v1.yaml"))

    // #51: the README's Debian example exactly as a user runs it — its own files, only the public
    // key put in, `drover bake` then `drover apply` answered "yes" at a terminal — bakes, and
    // both nodes pass its own health checks (cloud-init's marker; `systemctl is-active ssh` over
    // SSH as Drover's user). Its packages are this test's, so the layer is built once here.
    let example = try p.shippedExample(publicKey: p.publicKey)
    let exampleBake = try p.run(["bake"], in: example)
    #expect(exampleBake.status == 0 && exampleBake.output.contains("packages: layer built"), "\(exampleBake.output)")
    let exampleApply = try p.runAtTerminal(["apply"], answer: "yes", in: example)
    #expect(exampleApply.status == 0 && exampleApply.output.contains("Apply complete"), "\(exampleApply.output)\n\(p.consoles().suffix(3000))")
    if exampleApply.status == 0 {
      // What the seed promises the node's users holds on this image: sudo without a password.
      let node = try #require(try backend.connection.domain(named: "deb-1"))
      let sudo = try p.onNode(node, alias: "\(node.name).\(node.uuid.lowercased())", "sudo -n id -un; systemctl is-active ssh")
      #expect(sudo.status == 0 && sudo.output.contains("root\nactive"), "\(sudo.output)")
    }
    try p.expectShippedExampleUnchanged(example, publicKey: p.publicKey)
    try p.scaleToZero(example)

    let v1 = try p.run(["bake", "deb@v1"])
    #expect(v1.status == 0, "\(v1.output)")
    #expect(v1.output.contains("packages: layer reused"), "the example's packages are this recipe's: \(v1.output)")
    let m1 = try p.manifest("deb@v1")
    #expect(ImageNames.isFetchedKernel((m1.kernel as NSString).lastPathComponent), "the image's own kernel, content-addressed: \(m1.kernel)")
    let kernelSHA = try FileDigestCache.sha256(ofFile: m1.kernel), initrdSHA = try FileDigestCache.sha256(ofFile: m1.initrd)
    #expect(m1.kernelSHA256 == kernelSHA && m1.initrdSHA256 == initrdSHA)
    #expect(m1.packages?.contains { $0.name == "systemd-sysv" } == true && m1.packages?.contains { $0.name.hasPrefix("linux-image-6") } == true)
    #expect(m1.cmdline.contains("root=/dev/vda"))
    let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: p.imageDir + "/.layers")) ?? []
    #expect(leftovers.count == 1 && !leftovers.contains { $0.hasPrefix(".") }, "one layer, no partial one from the failed bake: \(leftovers)")

    // An image whose /boot has no kernel (its commands removed it): a located error, no image.
    try p.recipe("nokernel", "v1", base: "{debian: bookworm, packages: \(DebianProject.packages)}", extra: "commands: [\"rm -f /boot/vmlinuz-*\"]")
    let nokernel = try p.run(["bake", "nokernel@v1"])
    #expect(nokernel.status == 1 && nokernel.output.contains("images/nokernel-v1.yaml:3:7") && nokernel.output.contains("has no kernel in /boot"), "\(nokernel.output)")
    #expect(nokernel.output.contains("layer reused"), "the same packages: the same layer")
    #expect(!((try? FileManager.default.contentsOfDirectory(atPath: p.imageDir)) ?? []).contains { $0.hasPrefix("nokernel-") })
    try FileManager.default.removeItem(at: p.dir.appendingPathComponent("images/nokernel-v1.yaml"))

    // This host offers KVM domains but its CPU has no vmx/svm: a KVM pin is a plan error, and
    // without one the plan says the nodes run under TCG.
    try p.pool(replicas: 2, image: "deb@v1", extra: "accel: kvm")
    let pinned = try p.run(["plan"])
    #expect(pinned.status == 1 && pinned.output.contains("pins accel: kvm, but host qemu:///system cannot run KVM: no vmx/svm in the host CPU"), "\(pinned.output)")
    try p.pool(replicas: 2, image: "deb@v1")
    #expect(try p.run(["plan"]).output.contains("Domains defined on qemu:///system run with TCG (no vmx/svm in the host CPU)."))
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)\n\(p.consoles().suffix(3000))")
    // Each node's NIC has the MAC derived from its name and generation.
    for index in [1, 2] {
      let domain = try #require(try backend.connection.domain(named: "deb-\(index)"))
      let mac = NodeMAC.address(project: p.project, pool: "deb", index: index, generation: 1)
      #expect(try domain.xml(inactive: true).contains("<mac address='\(mac)'/>"))
    }
    let release = try #require(m1.packages?.first { $0.name.hasPrefix("linux-image-6") }).name.dropFirst("linux-image-".count)
    let consoles = p.consoles()
    #expect(consoles.components(separatedBy: "DROVER VERSION v1 on \(release)").count == 3, "both nodes run the image's own kernel \(release)")
    // Identity from each node's seed: hostname, instance-id (name and generation), the pool's
    // own user-data part, and the pool's key installed for the default user.
    for index in [1, 2] {
      #expect(consoles.contains("DROVER READY deb-\(index) deb-\(index)-g1") && consoles.contains("POOL PART deb-\(index)"), "\(consoles.suffix(4000))")
    }
    #expect(consoles.contains("Authorized keys from /home/debian/.ssh/authorized_keys for user debian"), "\(consoles.suffix(4000))")
    // Each node passed its ssh check: its host keys were pinned from its console first, and a
    // connection now sees exactly them.
    let node1 = try #require(try backend.connection.domain(named: "deb-1")), node2 = try #require(try backend.connection.domain(named: "deb-2"))
    let g1 = [node1, node2].map { "\($0.name).\($0.uuid.lowercased())" }
    #expect(p.pins.contains("\(g1[0]) ssh-ed25519 ") && p.pins.contains("\(g1[1]) ssh-ed25519 "), "\(p.pins)")
    let v1Read = try p.onNode(node1, alias: g1[0], "hostname; cat /etc/drover-version")
    #expect(v1Read.status == 0 && v1Read.output.contains("deb-1\nv1"), "\(v1Read.output)")
    let wideV1 = try p.run(["status", "-o", "wide"])
    #expect(wideV1.status == 0 && wideV1.output.contains("ADDRESSES") && wideV1.output.contains("(lease)"), "\(wideV1.output)")
    // The other node's pins are not this node's keys: refused, never accepted.
    let crossed = try p.onNode(node1, alias: g1[1], "true")
    #expect(crossed.status == 255 && crossed.output.contains("Host key verification failed"), "\(crossed.output)")
    // #20: SSH and guest-agent heartbeats answer on a real OS node (Drover's user over the
    // pinned key; qemu-guest-agent through libvirt): judged healthy past their silence window.
    // max_unhealthy 0 and a long unhealthy_after: a heal pass here never replaces anything.
    for source in ["{source: ssh, command: 'true', interval: 2s, missed: 2}", "{source: agent, interval: 2s, missed: 2}"] {
      try p.pool(replicas: 2, image: "deb@v1", extra: "heartbeat: \(source)\nremediation: {unhealthy_after: 1h, max_unhealthy: 0}")
      #expect(try p.run(["plan", "--detailed-exitcode"]).status == 0, "a heartbeat is no change to the nodes")
      #expect(try p.run(["heal"]).status == 0)
      Thread.sleep(forTimeInterval: 5)
      let beat = try p.run(["heal", "--json"])
      #expect(beat.status == 0 && beat.output.components(separatedBy: "\"condition\":\"healthy\"").count == 3, "\(source): \(beat.output)")
    }
    try p.expectRestartedNodesVerifiedFromAFreshStateFolder([node1, node2], uuids: g1)
    try p.pool(replicas: 2, image: "deb@v1")
    let seeds = { () throws -> [String] in
      try self.backend.connection.storagePool(named: p.imagePool)?.refresh()
      return try self.backend.connection.storagePool(named: p.imagePool)?.volumeNames().filter { $0.hasSuffix(".seed") }.sorted() ?? []
    }
    #expect(try seeds() == ["drover.\(p.project).deb-1.g1.seed", "drover.\(p.project).deb-2.g1.seed"])

    // v2 changes one file: the package layer is reused, the pool rolls to it.
    let v2 = try p.run(["bake", "deb@v2"])
    #expect(v2.status == 0 && v2.output.contains("layer reused") && !v2.output.contains("layer built"), "\(v2.output)")
    // The bakes hard-linked the layer into their staging roots and wrote their files there: the
    // layer itself is untouched.
    let layer = p.imageDir + "/.layers/" + (leftovers.first ?? "missing")
    #expect(FileManager.default.fileExists(atPath: layer + "/etc/passwd") && !FileManager.default.fileExists(atPath: layer + "/etc/drover-version") && !FileManager.default.fileExists(atPath: layer + "/etc/rc.local"))
    #expect(!FileManager.default.fileExists(atPath: layer + "/.drover"), "\(layer)")
    // v2 also moves the pool to static addresses: the replacements' seeds carry network-config.
    let addressing = "static_addresses: {first: 192.168.122.240/24, gateway: 192.168.122.1, dns: [192.168.122.1]}"
    try p.pool(replicas: 2, image: "deb@v2", extra: addressing)
    let rolled = try p.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.output)\n\(p.consoles().suffix(3000))")
    #expect(p.consoles().components(separatedBy: "DROVER VERSION v2 on \(release)").count == 3, "\(p.consoles().suffix(2000))")
    // The replacements are new instances with new seeds; the old seeds went with their nodes.
    // Each replacement is named by its own hostname, its domain's name (#42): never its predecessor's.
    #expect(p.consoles().contains("DROVER READY deb-1-g2 deb-1-g2") && p.consoles().contains("DROVER READY deb-2-g2 deb-2-g2"), "\(p.consoles().suffix(3000))")
    #expect(try seeds() == ["drover.\(p.project).deb-1.g2.seed", "drover.\(p.project).deb-2.g2.seed"])
    // The drain hook reached each old node over SSH; the new nodes serve v2; the old pins went
    // with their nodes.
    let drained = (try? String(contentsOfFile: p.dir.appendingPathComponent("drained").path, encoding: .utf8)) ?? ""
    #expect(drained.contains("drained deb-1 v1") && drained.contains("drained deb-2 v1"), "\(drained)")
    for index in [1, 2] {
      // A surge replacement is a second domain beside the first: its own name, its own keys.
      let domain = try #require(try backend.connection.domain(named: "deb-\(index)-g2"))
      // Node i of generation 2, replacing a DHCP node, takes its index's first slot: .240 and .242.
      let fixed = "192.168.122.\(240 + 2 * (index - 1))"
      let read = try p.onNode(domain, alias: "\(domain.name).\(domain.uuid.lowercased())", at: fixed, "cat /etc/drover-version; ip -4 -o addr show scope global")
      #expect(read.status == 0 && read.output.hasPrefix("v2\n") && read.output.contains("inet \(fixed)/24"), "\(read.output)")
    }
    // status -o wide shows each node's address (no lease for a static one: the guest agent's).
    let wide = try p.run(["status", "-o", "wide"])
    #expect(wide.status == 0 && wide.output.contains("192.168.122.240 (agent)") && wide.output.contains("192.168.122.242 (agent)"), "\(wide.output)")
    #expect(!p.pins.contains(g1[0]) && !p.pins.contains(g1[1]) && p.pins.contains("deb-1-g2.") && p.pins.contains("deb-2-g2."), "\(p.pins)")
    try p.pool(replicas: 0, image: "deb@v2")
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    #expect(try seeds().isEmpty, "scaling to zero leaves no seed")
  }
}
