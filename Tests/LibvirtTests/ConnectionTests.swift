import Foundation
import Libvirt
import Testing

/// The thin wrapper against libvirt's real in-process test driver.
@Suite struct ConnectionTests {
  static let xml = """
    <domain type='test'><name>NAME</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>
    <os><type>hvm</type></os></domain>
    """

  /// A connection to a private, empty test-driver world (a node file per connection).
  static func isolated() throws -> Connection {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-empty-node-\(getpid()).xml")
    try "<node><cpu><mode>fixed</mode></cpu></node>".write(to: file, atomically: true, encoding: .utf8)
    return try Connection.open("test://" + file.path)
  }

  @Test func missingMetadataIsNilNotAnError() throws {
    let c = try Connection.open("test:///default")
    let domain = try #require(try c.domain(named: "test"))
    #expect(try domain.metadata(namespace: "https://example.org/x") == nil)
  }

  @Test func lookupOfAMissingDomainIsNil() throws {
    let c = try Connection.open("test:///default")
    #expect(try c.domain(named: "no-such-domain-\(UUID())") == nil)
  }

  @Test func defineStartDestroyUndefineRoundTrip() throws {
    let c = try Self.isolated()
    let d = try c.defineDomain(xml: Self.xml.replacingOccurrences(of: "NAME", with: "wrap-1"))
    #expect(try d.state() == .shutoff)
    try d.start()
    #expect(try d.state() == .running)
    try d.setMetadata("<m a='1'/>", key: "x", namespace: "urn:t", live: true)
    #expect(try d.metadata(namespace: "urn:t")?.contains("a=\"1\"") == true)
    let listed = try c.allDomainsWithState()
    #expect(listed.map { $0.domain.name } == ["wrap-1"])
    #expect(listed.first?.state == .running)
    try d.destroy()
    try d.undefine()
    #expect(try c.domain(named: "wrap-1") == nil)
  }

  /// `uuid` formats libvirt's raw bytes itself: the text is libvirt's own, and a defined
  /// domain's UUID reads back as written, whatever case it was written in.
  @Test(arguments: ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "ABCDEF01-2345-6789-ABCD-EF0123456789"])
  func uuidReadsBackAsLibvirtFormatsIt(written: String) throws {
    let c = try Self.isolated()
    let xml = Self.xml.replacingOccurrences(of: "NAME", with: "uuid-1").replacingOccurrences(of: "<vcpu>", with: "<uuid>\(written)</uuid><vcpu>")
    let d = try c.defineDomain(xml: xml)
    #expect(d.uuid == written.lowercased())
    #expect(try c.allDomainsWithState().first?.domain.uuid == written.lowercased())
    #expect(try d.xml(inactive: true).contains("<uuid>\(d.uuid)</uuid>"))
  }

  @Test func errorsCarryLibvirtCodeAndMessage() throws {
    let c = try Self.isolated()
    _ = try c.defineDomain(xml: Self.xml.replacingOccurrences(of: "NAME", with: "dup"))
    let d = try #require(try c.domain(named: "dup"))
    try d.start()
    let error = #expect(throws: LibvirtError.self) { try d.start() }
    #expect((error?.code.rawValue ?? 0) > 0, "libvirt's own code, not the fallback")
    #expect(error?.message.contains("already running") == true)
  }

  @Test func badURIFailsWithNoConnect() {
    let error = #expect(throws: LibvirtError.self) { try Connection.open("bogus:///x") }
    #expect(error?.code == .noConnect)
  }

  @Test func deadDaemonSocketFailsQuickly() {
    let error = #expect(throws: LibvirtError.self) {
      try Connection.open("test+unix:///default?socket=/nonexistent/drover.sock", timeout: 5)
    }
    #expect(error != nil)
    #expect(error?.code != .timedOut, "a dead socket is refused at once, not waited for")
  }

  @Test func readOnlyConnectionRefusesWrites() throws {
    let c = try Connection.open("test+unix:///default", readOnly: true)
    let error = #expect(throws: LibvirtError.self) {
      try c.defineDomain(xml: Self.xml.replacingOccurrences(of: "NAME", with: "ro-\(getpid())"))
    }
    #expect(error?.code == .operationDenied)
  }

  /// Only connections to another machine get the event loop and keepalive: on local sockets the
  /// loop thread halves the throughput of concurrent reads (see `Libvirt`).
  @Test(arguments: [
    ("qemu:///system", false), ("test:///default", false), ("test+unix:///default", false),
    ("qemu+unix:///system?socket=/run/x.sock", false), ("qemu+ssh://root@h2/system", true),
    ("qemu+tcp://h2:16509/system", true), ("qemu://h2/system", true), ("not a uri", false),
  ])
  func eventLoopOnlyForAnotherMachine(uri: String, remote: Bool) {
    #expect(Connection.reachesAnotherMachine(uri) == remote)
  }
}
