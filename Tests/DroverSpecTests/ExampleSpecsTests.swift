import DroverModel
import DroverSpec
import Foundation
import Testing

/// The example specs in pools/ and images/ (used by the demo and the README) stay valid.
@Suite struct ExampleSpecsTests {
  @Test func examplesValidate() throws {
    let root = Fixtures.repoRoot.path
    let (sources, readProblems) = SpecFiles.read([root + "/pools", root + "/images"])
    let (set, diagnostics) = SpecLoader.load(sources)
    #expect(readProblems.isEmpty)
    #expect(diagnostics.isEmpty, "\(diagnostics)")
    let web = try #require(set.pools.first { $0.spec.name == "web" })
    #expect(web.spec.replicas == 3)
    #expect(web.spec.image.description == "demo@v1")
    #expect(web.spec.resources.memory == .mebibytes(256))
    #expect(Set(set.recipes.map { $0.recipe.reference.description }) == ["demo@v1", "demo@v2", "demo@v3"])
  }

  /// #18: the shipped Debian example (README) validates, and the real-VM test bakes its packages.
  @Test func theDebianExampleValidates() throws {
    let root = Fixtures.repoRoot.path + "/examples/debian"
    let (sources, readProblems) = SpecFiles.read([root + "/pools", root + "/images"])
    let (set, diagnostics) = SpecLoader.load(sources)
    #expect(readProblems.isEmpty && diagnostics.isEmpty, "\(readProblems) \(diagnostics)")
    let recipe = try #require(set.recipes.first?.recipe)
    guard case .debian(let base) = recipe.base else {
      Issue.record("not a Debian base")
      return
    }
    #expect(base.packages == ["cloud-init", "dbus", "ifupdown", "linux-image-amd64", "openssh-server", "qemu-guest-agent", "sudo", "systemd-sysv"])
    #expect(set.pools.first?.spec.seeded == true && set.pools.first?.spec.image.description == "debian@12.1")
  }

  @Test func defaultsAreSafe() throws {
    let text = "name: tiny\nhosts: [test:///default]\nreplicas: 1\nimage: demo@v1\n"
    let recipe = "name: demo\nversion: v1\nbase: {rootfs: busybox}\n"
    let (set, diagnostics) = SpecLoader.load([
      SpecSource(path: "pools/tiny.yaml", kind: .pool, bytes: Array(text.utf8)),
      SpecSource(path: "images/demo.yaml", kind: .recipe, bytes: Array(recipe.utf8)),
    ])
    #expect(diagnostics.isEmpty)
    let pool = try #require(set.pools.first?.spec)
    #expect(pool.protect == false)
    #expect(pool.errorBudget == .count(0))
    #expect(pool.drain.onTimeout == .fail)
    #expect(pool.drain.timeout > .seconds(0))
    #expect(pool.upgrade.healthTimeout == .minutes(5))
    #expect(pool.upgrade.onBudgetExceeded == .rollback)
    #expect(pool.upgrade.maxUnavailable == .count(0) && pool.upgrade.maxSurge == .count(1))
  }

  @Test(arguments: [
    ("512MiB", UInt64(512) << 20), ("2GiB", UInt64(2) << 30), ("1.5GiB", UInt64(3) << 29), ("10GB", 10_000_000_000),
    ("64KiB", 65536),
  ])
  func byteSizes(_ text: String, _ bytes: UInt64) {
    #expect(SpecUnits.parseByteSize(text)?.bytes == bytes)
  }

  @Test(arguments: ["512", "MiB", "-1GiB", "1e3MiB", "99999999999999999999GiB", "", "1.2.3GiB"])
  func badByteSizes(_ text: String) {
    #expect(SpecUnits.parseByteSize(text) == nil)
  }

  @Test(arguments: [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("2h", 7_200_000)])
  func timeSpans(_ text: String, _ ms: Int) {
    #expect(SpecUnits.parseTimeSpan(text)?.milliseconds == ms)
  }

  @Test(arguments: [
    ("qemu:///system", true), ("qemu+ssh://root@h1/system", true), ("test:///default", true),
    ("test+unix:///default", true), ("qemu+tls://h:16514/system?no_verify=1", true),
    ("kvm:///system", false), ("qemu://", false), ("qemu+ftp://h/system", false), ("qemu:///sys tem", false),
    ("/var/run/libvirt", false),
  ])
  func libvirtURIs(_ uri: String, _ valid: Bool) {
    #expect(SpecUnits.isLibvirtURI(uri) == valid)
  }

  /// A pool file never decides that a program runs or what a connection trusts (#16).
  @Test(arguments: [
    "qemu+ext:///system?command=/tmp/evil.sh", "qemu+EXT:///system", "qemu+ssh://h/system?netcat=/tmp/nc",
    "qemu+ssh://h/system?Command=/tmp/x", "qemu+tls://h/system?no_verify=1", "qemu+tls://h/system?pkipath=/tmp/pki",
    "qemu+ssh://h/system?keyfile=/tmp/k", "qemu+libssh://h/system?known_hosts=/tmp/kh", "qemu+libssh://h/system?known_hosts_verify=ignore",
    "qemu+ssh://h/system?sshauth=agent", "qemu+ssh://h/system?%63ommand=/tmp/x", "qemu+ssh://h/system?socket=/s&netcat=/tmp/nc",
  ])
  func unsafeURIsAreRefusedWithALocatedError(_ uri: String) {
    #expect(SpecUnits.unsafeURIReason(uri) != nil, "\(uri)")
    let yaml = "name: web\nhosts: [\"\(uri)\"]\nreplicas: 1\nimage: demo@v1\n"
    let (_, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    #expect(diagnostics.contains { $0.code.hasPrefix("spec.uri") && $0.location?.start.line == 2 }, "\(diagnostics)")
  }

  @Test(arguments: ["qemu:///system", "qemu+ssh://root@h1/system", "test+unix:///default?socket=/tmp/relay.sock", "qemu+tls://h:16514/system"])
  func plainURIsAreSafe(_ uri: String) {
    #expect(SpecUnits.unsafeURIReason(uri) == nil)
  }
}

/// Files too large to be specs are refused from their size alone, before being read.
@Suite struct SpecFileLimitsTests {
  @Test func hundredMegabyteFileIsRefusedWithoutReadingIt() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-big-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("huge.yaml")
    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
    let handle = try FileHandle(forWritingTo: file)
    try handle.truncate(atOffset: 100 << 20)
    try handle.close()
    let (sources, diagnostics) = SpecFiles.read([dir.path])
    #expect(sources.isEmpty)
    #expect(diagnostics.map(\.code) == ["spec.file.too-large"])
    #expect(diagnostics.first?.location?.file == file.path)
  }

  @Test func missingPathIsADiagnostic() {
    let (_, diagnostics) = SpecFiles.read(["/nonexistent/pools"])
    #expect(diagnostics.map(\.code) == ["spec.file.missing"])
  }
}
