import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// The TLS host of `scripts/tls-host`: a system libvirtd of its own (private mount namespace)
/// listening for TLS on 127.0.0.1:16515, its server certificate signed by a test CA.
enum TLSHost {
  static let uri = "qemu+tls://127.0.0.1:16515/system"
  static let trust = "/var/lib/drover/tls-host"
  /// Where its image pools live: traversable by its QEMU (libvirt-qemu).
  static let imageRoot = "/var/lib/drover/tls-host-images"
  static var connectURI: String { uri + "?pkipath=" + trust + "/client" }
  static let available: Bool = {
    QemuSystem.available && (try? Connection.open(connectURI, timeout: 30)) != nil
  }()

  /// The host goes down: every process of its mount namespace (tini, libvirtd, virtlogd) and its
  /// QEMUs are stopped, and with them the namespace and its /run — where libvirtd keeps its
  /// once-per-boot autostart marker. Never a process of this machine's own namespace.
  static func powerOff() throws {
    let script = #"""
      set -u
      root=$(pgrep -o -f '[-]-listen -f /var/lib/drover/tls-host/libvirtd.conf') || { echo "no TLS host daemon"; exit 1; }
      ns=$(readlink /proc/$root/ns/mnt)
      [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || { echo "the TLS host shares this namespace: refusing"; exit 1; }
      members() { for p in /proc/[0-9]*; do [ "$(readlink $p/ns/mnt 2>/dev/null)" = "$ns" ] && echo ${p#/proc/}; done; }
      # Its QEMUs run in mount namespaces of their own: they are found by their disks' folder.
      qemus() { pgrep -f '[q]emu-system.*/var/lib/drover/tls-host-images/'; }
      kill $(members) $(qemus) 2>/dev/null
      for _ in $(seq 1 100); do [ -z "$(members)$(qemus)" ] && exit 0; sleep 0.1; done
      kill -9 $(members) $(qemus) 2>/dev/null; sleep 0.5
      [ -z "$(members)$(qemus)" ]
      """#
    let stopped = try DroverProcess.run("/bin/sh", ["-c", script], environment: [:])
    #expect(stopped.status == 0, "the TLS host stopped: \(stopped.output)")
  }

  /// The host boots again: `scripts/tls-host` starts its libvirtd in a fresh namespace and waits
  /// until it answers.
  static func powerOn() throws {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("scripts/tls-host").path
    // Every descriptor but 0-2 closed first: the daemons it leaves running must not hold this
    // process's output pipe open (its end would never come).
    let closing = #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec /bin/bash "$0""#
    let started = try DroverProcess.run("/bin/bash", ["-c", closing, script], environment: [:])
    #expect(started.status == 0 && started.output.contains("answers"), "\(started.output)")
  }
}

/// #17: `qemu+tls://` with the CA and client certificate from the machine's configuration.
extension BakeSystemTests {
  @Test(.enabled(if: TLSHost.available, "needs the TLS host (scripts/tls-host)"))
  func aPoolOverATLSHostBootsThereWithTheMachinesCA() throws {
    let p = try TwoHostProject(
      uri: TLSHost.uri, trust: "{pkipath: \(TLSHost.trust)/client}", remoteRoot: TLSHost.imageRoot, connectURI: TLSHost.connectURI)
    let h2 = try Connection.open(TLSHost.connectURI, timeout: 30)
    defer { p.cleanUp(local: backend.connection) }
    #expect(try p.run(["bake", "twohost@v1"]).status == 0)
    try p.pool(replicas: 2)
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    #expect(created.output.contains("→ \(TLSHost.uri)") && !created.output.contains("pkipath"), "the transfer is shown, the trust material never: \(created.output)")
    #expect(try nodes(on: h2, project: p.project).count == 1, "one node booted on the TLS host and passed its console check")
    #expect(try nodes(on: backend.connection, project: p.project).count == 1)

    // images gc --host: v2 (pushed, named by no pool, used by no node) goes from the host with
    // its record; v1 (the pool's) stays, and so do the kernel and initrd they share.
    Thread.sleep(forTimeInterval: 1.1)  // manifests record whole seconds: v2 is newer, not v1's previous image
    #expect(try p.run(["bake", "twohost@v2"]).status == 0)
    let pushed = try p.run(["images", "push", "twohost@v2", "--host", "h2"])
    #expect(pushed.status == 0, "\(pushed.output)")
    let pool = try #require(try h2.storagePool(named: p.imagePool))
    func volumes() throws -> [String] {
      try pool.refresh()
      return try pool.volumeNames()
    }
    let before = try volumes()
    #expect(before.contains { $0.hasPrefix("twohost-v2-") && $0.hasSuffix(".image.json") }, "\(before)")
    let dry = try p.run(["images", "gc", "--host", "h2", "--dry-run"])
    #expect(dry.status == 0 && dry.output.contains("would delete twohost@v2 on h2") && !dry.output.contains("twohost@v1 on"), "\(dry.output)")
    #expect(try volumes() == before)
    let gc = try p.run(["images", "gc", "--host", "h2"])
    #expect(gc.status == 0 && gc.output.contains("deleting twohost@v2 on h2"), "\(gc.output)")
    let after = try volumes()
    #expect(!after.contains { $0.hasPrefix("twohost-v2-") }, "\(after)")
    #expect(after.contains { $0.hasPrefix("twohost-v1-") && $0.hasSuffix(".qcow2") } && after.contains { $0.hasPrefix("twohost-v1-") && $0.hasSuffix(".image.json") })
    #expect(after.contains { $0.hasPrefix("kernel-") } && after.contains { $0.hasPrefix("initrd-") }, "shared boot files stay: \(after)")

    // A throw-away runner: no local images at all. It fetches the pool's image from the host,
    // verified, and scales the pool with it on both hosts.
    func dropLocalImages() throws {
      for name in try FileManager.default.contentsOfDirectory(atPath: p.imageDir)
      where name.hasPrefix("twohost-") || (name.hasPrefix("boot-") && name.hasSuffix(".cpio.gz")) {
        try FileManager.default.removeItem(atPath: p.imageDir + "/" + name)
      }
    }
    try dropLocalImages()
    #expect(!(try p.run(["images"]).output.contains("twohost")))
    let fetched = try p.run(["images", "fetch", "--host", "h2"])
    #expect(fetched.status == 0 && fetched.output.contains("twohost@v1 ← h2: fetched"), "\(fetched.output)")
    #expect(try p.run(["images", "fetch", "--host", "h2"]).output.contains("already here"))
    let gone = try p.run(["images", "fetch", "twohost@v2", "--host", "h2"])
    #expect(gone.status == 1 && gone.output.contains("holds no pushed image twohost@v2"), "\(gone.output)")
    try p.pool(replicas: 4)
    let scaled = try p.run(["apply", "--auto-approve"])
    #expect(scaled.status == 0, "\(scaled.output)")
    #expect(try nodes(on: h2, project: p.project).count == 2 && nodes(on: backend.connection, project: p.project).count == 2)

    // A byte flipped in the host's copy: the fetch is refused and nothing is added here.
    let artifact = try #require(after.first { $0.hasPrefix("twohost-v1-") && $0.hasSuffix(".qcow2") })
    let path = try #require(try pool.volume(named: artifact)).path()
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.seek(toOffset: 70_000)
    let byte = try handle.read(upToCount: 1) ?? Data([0])
    try handle.seek(toOffset: 70_000)
    try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
    try handle.close()
    try dropLocalImages()
    let tampered = try p.run(["images", "fetch", "--host", "h2"])
    #expect(tampered.status == 1 && tampered.output.contains("does not match its record"), "\(tampered.output)")
    #expect(!(try p.run(["images"]).output.contains("twohost@v1")))
    #expect(try FileManager.default.contentsOfDirectory(atPath: p.imageDir).filter { $0.hasPrefix("twohost-") }.isEmpty, "no partial file")
  }

  /// A client holding another CA: the server's certificate has no known issuer, refused during
  /// the handshake, before any libvirt call.
  @Test(.enabled(if: TLSHost.available, "needs the TLS host (scripts/tls-host)"))
  func aTLSHostWhoseCAIsNotTheMachinesIsRefusedBeforeAnyCall() throws {
    let p = try TwoHostProject(
      uri: TLSHost.uri, trust: "{pkipath: \(TLSHost.trust)/wrong-client}", remoteRoot: TLSHost.imageRoot, connectURI: TLSHost.connectURI)
    defer { try? FileManager.default.removeItem(at: p.dir) }
    try p.pool(replicas: 2)
    for command in [["plan"], ["apply", "--auto-approve"]] {
      let run = try p.run(command)
      #expect(run.status == 1, "\(run.output)")
      #expect(run.output.contains(TLSHost.uri) && run.output.contains("known issuer") && !run.output.contains("pkipath"), "\(run.output)")
    }
    #expect(try nodes(on: try Connection.open(TLSHost.connectURI, timeout: 30), project: p.project).isEmpty)
    #expect(try nodes(on: backend.connection, project: p.project).isEmpty, "nothing applied on the host that answered either")
  }

  /// #36: a real host reboot. The TLS host goes down with its node on it (its libvirtd, QEMU
  /// and namespace gone, the autostart marker with them) and comes back as after a boot. Drover
  /// sets no autostart on nodes (heal's `start` rung brings them back, on a host it can read, under
  /// its guards); it does set it on its image pool, whose volumes are the nodes' disks. The next
  /// heal pass starts the node on its own disk and reports the outage; nothing is replaced.
  @Test(.enabled(if: TLSHost.available, "needs the TLS host (scripts/tls-host)"))
  func aHostRebootBringsEveryNodeBackOnItsOwnDisk() throws {
    let p = try TwoHostProject(
      uri: TLSHost.uri, trust: "{pkipath: \(TLSHost.trust)/client}", remoteRoot: TLSHost.imageRoot, connectURI: TLSHost.connectURI)
    defer { p.cleanUp(local: backend.connection) }
    #expect(try p.run(["bake", "twohost@v1"]).status == 0)
    try p.pool(replicas: 4, extra: "remediation: {unhealthy_after: 5s, max_unhealthy: 1, repair_grace: 60s}")
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    func remote() throws -> [String: (uuid: String, disk: String)] {
      let h2 = try Connection.open(TLSHost.connectURI, timeout: 30)
      var result: [String: (String, String)] = [:]
      for d in try h2.allDomains() {
        guard let meta = try? d.metadata(namespace: OwnershipMetadata.namespace), let o = OwnershipMetadata.parse(meta), o.project == p.project else { continue }
        result[d.name] = (d.uuid, o.disk)
      }
      return result
    }
    let before = try remote()
    let names = before.keys.sorted()
    #expect(names.count == 2, "two nodes on the TLS host: \(names)")
    let h2 = try Connection.open(TLSHost.connectURI, timeout: 30)
    for name in names { #expect(try h2.domain(named: name)?.autostart() == false, "nodes are never autostarted") }
    #expect(try h2.storagePool(named: p.imagePool)?.autostart() == true, "the image pool is")

    try TLSHost.powerOff()
    let down = try p.run(["heal"])
    #expect(!down.output.contains("DISCARDS DISK") && !down.output.contains("replace th"), "an unreadable host is no death: \(down.output)")
    try TLSHost.powerOn()
    let booted = try Connection.open(TLSHost.connectURI, timeout: 30)
    for name in names { #expect(try booted.domain(named: name)?.state() == .shutoff, "after the boot \(name) is off: nothing autostarted it") }

    var output = ""
    var running = false
    for _ in 0..<30 where !running {
      let pass = try p.run(["heal"])
      output += pass.output
      let now = try? Connection.open(TLSHost.connectURI, timeout: 30)
      running = names.allSatisfy { (try? now?.domain(named: $0)?.state()) == .running }
      if !running { Thread.sleep(forTimeInterval: 1) }
    }
    #expect(running, "\(output.suffix(3000))")
    for name in names { #expect(output.contains("start \(name): done (same domain, same disk)"), "\(output.suffix(3000))") }
    #expect(output.contains("OUTAGE"), "the pass says the host is in outage (2 of its 2 nodes down): \(output.suffix(3000))")
    #expect(!output.contains("DISCARDS DISK"), "\(output.suffix(3000))")
    let after = try remote()
    #expect(after.mapValues(\.uuid) == before.mapValues(\.uuid) && after.mapValues(\.disk) == before.mapValues(\.disk), "the same domains on the same disks")
    // And it boots: its console check passes again.
    let console = try p.run(["heal"])
    #expect(console.status == 0, "\(console.output)")
  }
}

