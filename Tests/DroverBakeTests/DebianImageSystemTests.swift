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
    static let packages = "[systemd-sysv, linux-image-amd64]"

    init() throws {
      try super.init("deb")
      // systemd runs an executable /etc/rc.local at boot: the guest says which version it is.
      try "#!/bin/sh\necho \"DROVER READY $(cat /etc/drover-version) on $(uname -r)\" > /dev/ttyS0\nexit 0\n"
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
        health: [{type: console, pattern: "DROVER READY", timeout: 300s, interval: 1s, retries: 0}]
        upgrade: {canary: 1, waves: [1], max_surge: 1, max_unavailable: 0, health_timeout: 300s}
        network: default
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

    func cleanUp(_ connection: Connection) {
      try? pool(replicas: 0, image: "deb@v1")
      _ = try? run(["apply", "--auto-approve"])
      removeAll(connection)
    }
  }

  @Test func aDebianImageFromPackagesBootsItsOwnKernelAndRollsWithItsLayerReused() throws {
    let p = try DebianProject()
    defer { p.cleanUp(backend.connection) }

    // A package that does not exist: located at the recipe's base, nothing left behind.
    try p.recipe("bad", "v1", base: "{debian: bookworm, packages: [systemd-sysv, drover-no-such-package]}")
    let bad = try p.run(["bake", "bad@v1"])
    #expect(bad.status == 1, "\(bad.output)")
    #expect(bad.output.contains("images/bad-v1.yaml:3:7") && bad.output.contains("package drover-no-such-package not found in Debian bookworm"), "\(bad.output)")
    try FileManager.default.removeItem(at: p.dir.appendingPathComponent("images/bad-v1.yaml"))

    let v1 = try p.run(["bake", "deb@v1"])
    #expect(v1.status == 0, "\(v1.output)")
    #expect(v1.output.contains("packages: layer built"), "\(v1.output)")
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
    #expect(p.consoles().components(separatedBy: "DROVER READY v1 on \(release)").count == 3, "both nodes run the image's own kernel \(release)")

    // v2 changes one file: the package layer is reused, the pool rolls to it.
    let v2 = try p.run(["bake", "deb@v2"])
    #expect(v2.status == 0 && v2.output.contains("layer reused") && !v2.output.contains("layer built"), "\(v2.output)")
    try p.pool(replicas: 2, image: "deb@v2")
    let rolled = try p.run(["apply", "--auto-approve"])
    #expect(rolled.status == 0, "\(rolled.output)\n\(p.consoles().suffix(3000))")
    #expect(p.consoles().components(separatedBy: "DROVER READY v2 on \(release)").count == 3, "\(p.consoles().suffix(2000))")
  }
}
