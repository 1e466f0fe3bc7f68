import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// The second libvirt host of `scripts/second-host`: user drover-h2's session daemon through an
/// sshd on 127.0.0.1:2222 with a pinned host key — over `qemu+ssh://` (the OpenSSH client, whose
/// known hosts for the alias are set in /etc/ssh/ssh_config.d) and over `qemu+libssh://`.
enum SecondHost {
  static let uri = "qemu+ssh://drover-second-host/session"
  static let libsshURI = "qemu+libssh://drover-h2@127.0.0.1:2222/session"
  static let trust = "/var/lib/drover/second-host"
  static var connectURI: String { uri }
  static let available: Bool = {
    QemuSystem.available && (try? Connection.open(connectURI, timeout: 30)) != nil
  }()
}

/// #17: one pool over two real libvirt hosts. Everything host-side of the second host lives on
/// it: its image pool, the pushed and verified image, kernel and initrd volumes, and consoles
/// logged into its pool and read back through libvirt.
extension BakeSystemTests {
  final class TwoHostProject: VMTestProject {
    let remoteImageDir: String
    /// The pool's name, unique per run: node names are global on a host.
    let pool = "th\(UInt16.random(in: 1000...9999))"

    /// The second host as this machine reaches it (trust material added): for checks and clean-up.
    let secondConnectURI: String

    /// - Parameters:
    ///   - trust: the machine configuration's entry for h2 (its trust material, a YAML mapping).
    ///   - remoteRoot: a folder on the second host's file system for its image pool.
    init(
      uri: String = SecondHost.uri, knownHosts: String = SecondHost.trust + "/known_hosts", trust: String? = nil,
      remoteRoot: String = "/var/lib/drover-h2", connectURI: String = SecondHost.connectURI
    ) throws {
      secondConnectURI = connectURI
      let id = "\(getpid() % 100_000)-\(UInt16.random(in: 0...UInt16.max))"
      remoteImageDir = "\(remoteRoot)/images-\(id)"
      try super.init("twohost", id: id)
      try """
        project: \(project)
        state: {backend: local, dir: .drover}
        hosts:
          - {name: h1, uri: "qemu:///system"}
          - {name: h2, uri: "\(uri)", image_dir: \(remoteImageDir)}

        """.write(to: dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
      // The machine's configuration: the only place the second host's key and known hosts live.
      try """
        allow_paths: [\(remoteRoot)]
        hosts:
          h2: \(trust ?? "{keyfile: \(SecondHost.trust)/id_ed25519, known_hosts: \(knownHosts)}")

        """.write(to: dir.appendingPathComponent("machine-config.yaml"), atomically: true, encoding: .utf8)
      chmod(dir.appendingPathComponent("machine-config.yaml").path, 0o644)
      for version in ["v1", "v2"] {
        try """
          #!/bin/busybox sh
          /bin/busybox --install -s /bin
          echo "DROVER READY \(version) on $(cat /proc/sys/kernel/hostname)"
          exec sh -c 'while :; do sleep 3600; done'
          """.write(to: dir.appendingPathComponent("images/files/init-\(version)"), atomically: true, encoding: .utf8)
        try """
          name: twohost
          version: \(version)
          base: {rootfs: busybox}
          files: [{source: files/init-\(version), path: /init, mode: "0755"}]
          cmdline: console=ttyS0 panic=-1 quiet
          size: 32MiB

          """.write(to: dir.appendingPathComponent("images/\(version).yaml"), atomically: true, encoding: .utf8)
      }
    }

    func pool(replicas: Int, image: String = "twohost@v1", extra: String = "") throws {
      try """
        name: \(pool)
        hosts: [h1, h2]
        replicas: \(replicas)
        image: \(image)
        resources: {memory: 160MiB}
        health: [{type: console, pattern: "DROVER READY", timeout: 90s, interval: 250ms, retries: 0}]
        upgrade: {canary: 1, waves: [2], max_surge: 1, max_unavailable: 0, health_timeout: 90s}
        \(extra)
        """.write(to: dir.appendingPathComponent("pools/\(pool).yaml"), atomically: true, encoding: .utf8)
    }

    /// The project comes from drover.yaml here, never from the environment.
    @discardableResult
    override func run(_ args: [String]) throws -> (status: Int32, output: String) { try run(args, extra: [:]) }

    /// With more variables (`DROVER_CRASH_AT`).
    func run(_ args: [String], extra: [String: String]) throws -> (status: Int32, output: String) {
      try DroverProcess.run(
        binary, args, in: dir, environment: environment.mapValues { $0 }.merging(["DROVER_PROJECT": nil]) { $1 }.merging(extra.mapValues { $0 }) { $1 })
    }

    func cleanUp(local: Connection) {
      try? pool(replicas: 0)
      _ = try? run(["apply", "--auto-approve"])
      for connection in [local, try? Connection.open(secondConnectURI, timeout: 30)].compactMap({ $0 }) {
        if let p = try? connection.storagePool(named: imagePool) {
          for name in (try? p.volumeNames()) ?? [] { try? p.volume(named: name)?.delete() }
          try? p.stop()
          try? p.undefine()
        }
      }
      try? FileManager.default.removeItem(atPath: remoteImageDir)  // the hosts here share this machine's disk
      removeAll(local)
    }
  }

  /// Nodes of `project` on a host, by name, with their image.
  func nodes(on connection: Connection, project: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for d in try connection.allDomains() {
      guard let meta = try? d.metadata(namespace: OwnershipMetadata.namespace), let o = OwnershipMetadata.parse(meta), o.project == project else { continue }
      result[d.name] = o.image
    }
    return result
  }

  @Test(.enabled(if: SecondHost.available, "needs the second host (scripts/second-host)"))
  func aPoolOverTwoHostsBootsRollsAndDriftsOnBoth() throws {
    let p = try TwoHostProject()
    let h2 = try Connection.open(SecondHost.connectURI, timeout: 30)
    defer { p.cleanUp(local: backend.connection) }
    let baked = try p.run(["bake"])
    #expect(baked.status == 0, "\(baked.output)")
    try p.pool(replicas: 4)
    // Pushed ahead of time, verified by reading back; a second push sends nothing.
    let push = try p.run(["images", "push"])
    #expect(push.status == 0 && push.output.contains("twohost@v1 → h2: sent") && push.output.contains("verified by reading it back"), "\(push.output)")
    let again = try p.run(["images", "push", "--host", "h2"])
    #expect(again.status == 0 && again.output.contains("already there") && !again.output.contains("sent "), "\(again.output)")
    let listed = try p.run(["images"])
    #expect(listed.output.contains("ON HOSTS") && listed.output.contains("h2"), "\(listed.output)")
    #expect(try p.run(["images", "push", "--host", "h1"]).status == 1, "h1 keeps no image folder of its own")
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    let local = try nodes(on: backend.connection, project: p.project), remote = try nodes(on: h2, project: p.project)
    #expect(local.count == 2 && remote.count == 2, "two nodes on each host: \(local) \(remote)")
    // The image, kernel and initrd are volumes of the second host's own pool, in its own folder.
    let pool = try #require(try h2.storagePool(named: p.imagePool))
    try pool.refresh()
    let volumes = try pool.volumeNames()
    #expect(volumes.contains { $0.hasPrefix("twohost-v1-") && $0.hasSuffix(".qcow2") }, "\(volumes)")
    #expect(volumes.contains { $0.hasPrefix("kernel-") } && volumes.contains { $0.hasPrefix("initrd-") }, "\(volumes)")
    #expect(volumes.contains { $0.hasPrefix("console-\(p.pool)-") }, "consoles are logged on the host: \(volumes)")
    #expect(try pool.xml().contains(p.remoteImageDir))

    // A rollout crosses both hosts; the plan shows v2 going to h2 first, verified there before use.
    try p.pool(replicas: 4, image: "twohost@v2")
    let planned = try p.run(["plan"])
    #expect(planned.output.contains("Images sent first") && planned.output.contains("twohost@v2") && planned.output.contains("→ \(SecondHost.uri)"), "\(planned.output)")
    let rolled = try p.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.output)")
    #expect(Set(try nodes(on: backend.connection, project: p.project).values) == ["twohost@v2"])
    #expect(Set(try nodes(on: h2, project: p.project).values) == ["twohost@v2"])
    let drift = try p.run(["drift"])
    #expect(drift.status == 0, "drift reads both hosts: \(drift.output)")

    // A byte flipped in the host's copy: refused before any node uses it.
    try pool.refresh()
    let artifact = try #require(try pool.volumeNames().first { $0.hasPrefix("twohost-v1-") && $0.hasSuffix(".qcow2") })
    let path = try #require(try pool.volume(named: artifact)).path()
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.seek(toOffset: 70_000)
    let byte = try handle.read(upToCount: 1) ?? Data([0])
    try handle.seek(toOffset: 70_000)
    try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
    try handle.close()
    try p.pool(replicas: 4, image: "twohost@v1")
    let tampered = try p.run(["apply", "--auto-approve"])
    #expect(tampered.status != 0 && tampered.output.contains("does not match"), "\(tampered.output)")
    #expect(Set(try nodes(on: h2, project: p.project).values) == ["twohost@v2"], "no node on the host used the flipped copy")

    // Scaled to zero: the nodes' overlays and console logs on the host go with them.
    try p.pool(replicas: 0, image: "twohost@v2")
    #expect(try p.run(["apply", "--auto-approve"]).status == 0)
    try pool.refresh()
    let left = try pool.volumeNames().filter { $0.hasPrefix("console-") || $0.hasPrefix("drover.") }
    #expect(left.isEmpty, "no overlay or console log outlives its node: \(left)")
  }

  /// Over `qemu+ssh://` the known hosts are the OpenSSH client's (this machine's ssh
  /// configuration): an alias pinned to another key is refused at connect.
  @Test(.enabled(if: SecondHost.available, "needs the second host (scripts/second-host)"))
  func aWrongHostKeyOverSSHIsRefusedBeforeAnyCall() throws {
    let p = try TwoHostProject(uri: "qemu+ssh://drover-second-host-wrongkey/session")
    defer { try? FileManager.default.removeItem(at: p.dir) }
    try p.pool(replicas: 2)
    let plan = try p.run(["plan"])
    #expect(plan.status == 1 && plan.output.contains("drover-second-host-wrongkey") && plan.output.contains("Host key verification failed"), "\(plan.output)")
    #expect(try nodes(on: try Connection.open(SecondHost.connectURI, timeout: 30), project: p.project).isEmpty)
  }

  /// Over `qemu+libssh://` the known hosts come from the machine's host entry (`known_hosts:`).
  @Test(.enabled(if: SecondHost.available, "needs the second host (scripts/second-host)"))
  func aWrongHostKeyIsRefusedBeforeAnyCall() throws {
    let wrong = FileManager.default.temporaryDirectory.appendingPathComponent("drover-wrong-kh-\(getpid())").path
    let key = FileManager.default.temporaryDirectory.appendingPathComponent("drover-wrong-key-\(getpid())").path
    defer { for f in [wrong, key, key + ".pub"] { try? FileManager.default.removeItem(atPath: f) } }
    let keygen = Process()
    keygen.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
    keygen.arguments = ["-q", "-t", "ed25519", "-N", "", "-f", key]
    try keygen.run()
    keygen.waitUntilExit()
    let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    try "[127.0.0.1]:2222 \(pub)\n".write(toFile: wrong, atomically: true, encoding: .utf8)
    let p = try TwoHostProject(uri: SecondHost.libsshURI, knownHosts: wrong)
    defer { try? FileManager.default.removeItem(at: p.dir) }
    try p.pool(replicas: 2)
    let plan = try p.run(["plan"])
    #expect(plan.status == 1, "\(plan.output)")
    #expect(plan.output.contains(SecondHost.libsshURI) && !plan.output.contains("keyfile"), "names the host, never its key: \(plan.output)")
    #expect(try nodes(on: try Connection.open(SecondHost.connectURI, timeout: 30), project: p.project).isEmpty)
  }

  /// #36, host outages on two real hosts: every node of the second host goes down at once, and
  /// one of this host's. The second host is in outage — nothing there is replaced, the pass says
  /// so and exits 2 — while this host's node is still healed; `start` (which keeps a disk) still
  /// runs on the host in outage.
  @Test(.enabled(if: SecondHost.available, "needs the second host (scripts/second-host)"))
  func aHostWhoseNodesAllWentDownIsInOutageTheOtherIsStillHealed() throws {
    let p = try TwoHostProject()
    let h2 = try Connection.open(SecondHost.connectURI, timeout: 30)
    defer { p.cleanUp(local: backend.connection) }
    #expect(try p.run(["bake", "twohost@v1"]).status == 0)
    let replaceOnly = "remediation: {unhealthy_after: 0s, max_unhealthy: 100%, max_in_flight: 4, actions: [replace]}"
    try p.pool(replicas: 4, extra: replaceOnly)
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    let remote = try h2.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }
    let local = try backend.connection.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }
    #expect(remote.count == 2 && local.count == 2, "two nodes on each host")
    let remoteUUIDs = remote.map(\.uuid).sorted()
    for d in remote { try d.destroy() }
    let victim = try #require(local.first)
    let victimName = victim.name, victimUUID = victim.uuid
    try victim.destroy()
    let pass = try p.run(["heal"])
    #expect(pass.status == 2, "nodes left unhealthy on the host in outage: \(pass.output)")
    #expect(pass.output.contains("host \(SecondHost.uri): OUTAGE") && !pass.output.contains("host qemu:///system: OUTAGE"), "\(pass.output)")
    #expect(pass.output.contains("in outage") && pass.output.contains("replace (DISCARDS DISK)"), "\(pass.output)")
    #expect(try h2.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }.map(\.uuid).sorted() == remoteUUIDs, "nothing replaced on the host in outage")
    #expect(try h2.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }.allSatisfy { (try? $0.state()) == .shutoff })
    let byName = try backend.connection.domain(named: victimName)
    let healedHere = try #require(try byName ?? backend.connection.allDomains().first { $0.name.hasPrefix(victimName + "-g") })
    let healedState = try healedHere.state()
    #expect(healedHere.uuid != victimUUID && healedState == .running, "this host's node was replaced")
    // The gentlest rung keeps a disk, so it runs on a host in outage too.
    try p.pool(replicas: 4, extra: "remediation: {unhealthy_after: 0s, max_unhealthy: 100%, max_in_flight: 4}")
    let started = try p.run(["heal"])
    #expect(started.output.components(separatedBy: ": done (same domain, same disk)").count == 3, "\(started.output)")
    #expect(try h2.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }.map(\.uuid).sorted() == remoteUUIDs)
    #expect(try h2.allDomains().filter { $0.name.hasPrefix(p.pool + "-") }.allSatisfy { (try? $0.state()) == .running })
  }
}
