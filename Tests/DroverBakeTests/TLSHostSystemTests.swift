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
}

/// #17: `qemu+tls://` with the CA and client certificate from the machine's configuration.
extension BakeSystemTests {
  @Test(.enabled(if: TLSHost.available, "needs the TLS host (scripts/tls-host)"))
  func aPoolOverATLSHostBootsThereWithTheMachinesCA() throws {
    let p = try TwoHostProject(
      uri: TLSHost.uri, trust: "{pkipath: \(TLSHost.trust)/client}", remoteRoot: TLSHost.imageRoot, connectURI: TLSHost.connectURI)
    let h2 = try Connection.open(TLSHost.connectURI, timeout: 30)
    defer { p.cleanUp(local: backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    try p.pool(replicas: 2)
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    #expect(created.output.contains("→ \(TLSHost.uri)") && !created.output.contains("pkipath"), "the transfer is shown, the trust material never: \(created.output)")
    #expect(try nodes(on: h2, project: p.project).count == 1, "one node booted on the TLS host and passed its console check")
    #expect(try nodes(on: backend.connection, project: p.project).count == 1)
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
}
