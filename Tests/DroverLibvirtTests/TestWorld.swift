import DroverBasics
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt

/// A real libvirt test-driver world for one test.
///
/// `isolated()` gives a private, empty in-process hypervisor (`test:///<node file>`: each
/// connection gets its own world); `daemon()` goes through libvirtd's RPC (`test+unix:///default`),
/// shared by every client, so tests there use unique pool names.
struct TestWorld {
  let backend: LibvirtHostBackend
  var uri: String { backend.uri }

  /// A fixed key per project: tests seal and verify like apply does.
  static func key(_ project: String) -> RecordKey { RecordKey(bytes: Array(repeating: 7, count: 32), project: project) }

  static func isolated(project: String = "default") throws -> TestWorld {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-node-\(getpid()).xml")
    try "<node><cpu><mode>fixed</mode></cpu></node>".write(to: file, atomically: true, encoding: .utf8)
    return TestWorld(backend: try LibvirtHostBackend.connect("test://" + file.path, keyring: Keyring(project: project, key: key(project)), imagePool: "drover-images"))
  }

  static func daemon(project: String = "default") throws -> TestWorld {
    TestWorld(backend: try LibvirtHostBackend.connect("test+unix:///default", keyring: Keyring(project: project, key: key(project)), imagePool: "drover-images"))
  }

  /// The same connection acting for another project (with that project's key).
  func acting(for project: String) -> TestWorld {
    project == backend.keyring.project
      ? self : TestWorld(backend: LibvirtHostBackend(connection: backend.connection, keyring: Keyring(project: project, key: Self.key(project)), imagePool: backend.imagePool))
  }

  static func unique(_ prefix: String) -> String {
    "\(prefix)\(UInt32.random(in: 0..<UInt32.max) % 100_000)"
  }

  func pool(_ name: String, replicas: Int, image: String = "demo@v1", labels: [String: String] = [:], protect: Bool = false)
    -> PoolSpec
  {
    PoolSpec(name: name, hosts: [uri], replicas: replicas, image: ImageRef(parsing: image)!, labels: labels, protect: protect)
  }

  /// Defines a domain with no Drover metadata (someone else's VM).
  func defineForeign(_ name: String) throws -> Domain {
    let d = try backend.connection.defineDomain(
      xml: "<domain type='test'><name>\(name)</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    try d.start()
    return d
  }
}
