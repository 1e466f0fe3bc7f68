import DroverBasics
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt
import Testing

@Suite struct OwnershipAndXMLTests {
  static let hostile = [
    "lt": "<script>", "amp": "a & b", "quotes": "\"double\" 'single'", "cdata": "x]]>y", "newline": "one\ntwo\r\nthree",
    "shell": "$(rm -rf /); `id`; echo ok", "tab": "a\tb", "unicode": "ünïcødé ✓ 🚀", "element": "</drover:node><evil/>",
  ]

  /// Hostile labels come back from libvirt byte-identical and add no element to the domain XML.
  @Test(arguments: ["isolated", "daemon"])
  func hostileValuesRoundTripThroughLibvirt(_ kind: String) throws {
    let project = "p<&>\"'"
    let world = kind == "isolated" ? try TestWorld.isolated(project: project) : try TestWorld.daemon(project: project)
    let name = TestWorld.unique("esc")
    let spec = world.pool(name, replicas: 1, labels: Self.hostile)
    let ownership = desiredOwnership(spec, index: 1, digest: "abc", generation: 1, project: project)
    try world.backend.create(NodeDefinition(ownership: ownership))
    defer { try? world.backend.delete(node: "\(name)-1", uuid: (try? world.backend.connection.domain(named: "\(name)-1"))??.uuid ?? "") }

    let domain = try #require(try world.backend.connection.domain(named: "\(name)-1"))
    let metadata = try #require(try domain.metadata(namespace: OwnershipMetadata.namespace))
    let parsed = try #require(OwnershipMetadata.parse(metadata))
    #expect(parsed == ownership)
    #expect(parsed.labels == Self.hostile)
    let xml = try domain.xml()
    let elements = xml.components(separatedBy: "<").count - xml.components(separatedBy: "</").count
    let reference = try world.backend.connection.defineDomain(
      xml: DomainXML.render(
        NodeDefinition(ownership: desiredOwnership(world.pool(name + "r", replicas: 1), index: 1, digest: "", generation: 1, project: "p")),
        bootsNodes: world.backend.bootsNodes, uuid: UUID().uuidString.lowercased(), key: TestWorld.key("p"), host: world.uri))
    defer { try? reference.undefine() }
    let plainXML = try reference.xml()
    let plainElements = plainXML.components(separatedBy: "<").count - plainXML.components(separatedBy: "</").count
    #expect(elements == plainElements + Self.hostile.count, "one <drover:label> per label and no other element")
    #expect(!xml.contains("<evil"))
  }

  @Test func metadataParserRejectsForeignShapes() {
    #expect(OwnershipMetadata.parse("<other:thing xmlns:other='x' pool='a'/>") == nil)
    #expect(OwnershipMetadata.parse("<drover:node pool='a'/>") == nil, "missing fields → not ours")
    #expect(OwnershipMetadata.parse("") == nil)
  }

  /// One scan gives ownership, the seal check and the fingerprint digest; the digest changes
  /// whenever the record does (saved plans rely on it), intact or not.
  /// Numbers in a record anyone can edit are bounded: no arithmetic on them can trap.
  @Test func outOfRangeNumbersMakeARecordForeign() {
    let huge = "<drover:node xmlns:drover=\"https://drover.dev/xmlns/node/1\" pool=\"web\" name=\"web-1\" index=\"1\" image=\"demo@v1\" "
    #expect(OwnershipMetadata.parse(huge + "generation=\"9223372036854775807\" vcpu=\"1\" memory_mib=\"256\" disk_mib=\"1\"/>") == nil)
    #expect(OwnershipMetadata.parse(huge + "generation=\"1\" vcpu=\"1\" memory_mib=\"18014398509481984\" disk_mib=\"1\"/>") == nil)
    #expect(OwnershipMetadata.parse(huge + "generation=\"1\" vcpu=\"1\" memory_mib=\"256\" disk_mib=\"1\"/>") != nil)
  }

  static let uuid = "6f1c0a52-3c1e-4a0e-9d6a-000000000001"
  static let host = "test:///default"

  /// #18: a static address is part of the sealed record, read back as the address it was;
  /// an edited one breaks the seal like any other edit.
  @Test func aStaticAddressIsSealedInTheRecord() throws {
    var spec = PoolSpec(name: "web", hosts: [Self.host], replicas: 2, image: ImageRef(parsing: "demo@v1")!, network: "default")
    spec.staticAddresses = StaticAddresses(first: StaticAddresses.parse("10.0.0.10")!, prefix: 24)
    let ownership = desiredOwnership(spec, index: 2, digest: "abc", generation: 3, project: "p")
    #expect(ownership.address == "10.0.0.13")
    let xml = OwnershipMetadata.render(ownership, key: TestWorld.key("p"), binding: .init(uuid: Self.uuid, host: Self.host))
    let reading = OwnershipMetadata.read(xml, name: "web-2", uuid: Self.uuid, host: Self.host, key: TestWorld.key("p"))
    #expect(reading.trust == .verified && reading.ownership?.address == "10.0.0.13")
    let edited = xml.replacingOccurrences(of: "10.0.0.13", with: "10.0.0.99")
    #expect(OwnershipMetadata.read(edited, name: "web-2", uuid: Self.uuid, host: Self.host, key: TestWorld.key("p")).trust.mismatchReason != nil)
    #expect(desiredOwnership(PoolSpec(name: "web", hosts: [Self.host], replicas: 2, image: ImageRef(parsing: "demo@v1")!), index: 2, digest: "abc", generation: 3, project: "p").address == nil)
  }

  /// #45: a kept node's role, its rollout, its time and its capacity are sealed: a serving record
  /// made "kept" (or a kept one made serving, or given more time) by hand is refused; a role
  /// Drover never writes makes the record foreign.
  @Test func aKeptRoleIsSealedInTheRecord() throws {
    let spec = PoolSpec(name: "web", hosts: [Self.host], replicas: 2, image: ImageRef(parsing: "demo@v1")!)
    var ownership = desiredOwnership(spec, index: 2, digest: "abc", generation: 3, project: "p")
    ownership.kept = KeptNode(rollout: "web-1700000000000", until: 1_800_000_000, reserves: false, state: .hibernated)
    let key = TestWorld.key("p")
    let xml = OwnershipMetadata.render(ownership, key: key, binding: .init(uuid: Self.uuid, host: Self.host))
    let reading = OwnershipMetadata.read(xml, name: "web-2", uuid: Self.uuid, host: Self.host, key: key)
    #expect(reading.trust == .verified && reading.ownership?.kept == ownership.kept)
    for (from, to) in [("1800000000", "1900000000"), (" role=\"kept\"", " role=\"serving\""), (" kept_capacity=\"disk-only\"", ""), (" kept_state=\"hibernated\"", "")] {
      let edited = xml.replacingOccurrences(of: from, with: to)
      #expect(edited != xml)
      #expect(OwnershipMetadata.read(edited, name: "web-2", uuid: Self.uuid, host: Self.host, key: key).trust.mismatchReason != nil, "\(to)")
    }
    let serving = OwnershipMetadata.render(desiredOwnership(spec, index: 2, digest: "abc", generation: 3, project: "p"), key: key, binding: .init(uuid: Self.uuid, host: Self.host))
    let forged = serving.replacingOccurrences(of: " protect=", with: " role=\"kept\" kept_by=\"x\" kept_until=\"1\" protect=")
    #expect(OwnershipMetadata.read(forged, name: "web-2", uuid: Self.uuid, host: Self.host, key: key).trust.mismatchReason != nil)
    #expect(OwnershipMetadata.parse(xml.replacingOccurrences(of: "role=\"kept\"", with: "role=\"spare\"")) == nil)
    #expect(OwnershipMetadata.parse(xml.replacingOccurrences(of: "kept_state=\"hibernated\"", with: "kept_state=\"frozen\"")) == nil, "a state Drover never writes")
  }

  /// The record check, case by case: only a record sealed with the project key for this very
  /// domain (its UUID, name and host) is `.verified`; every copy, edit and forgery is a mismatch.
  @Test func aRecordIsTrustedOnlyWhenSealedForThisVeryDomain() throws {
    let spec = PoolSpec(name: "web", hosts: [Self.host], replicas: 2, image: ImageRef(parsing: "demo@v1")!, labels: Self.hostile)
    let ownership = desiredOwnership(spec, index: 2, digest: "abc", generation: 1, project: "p")
    let key = TestWorld.key("p")
    let xml = OwnershipMetadata.render(ownership, key: key, binding: .init(uuid: Self.uuid, host: Self.host))
    func read(_ text: String, name: String = "web-2", uuid: String = Self.uuid, host: String = Self.host, key: RecordKey? = TestWorld.key("p")) -> OwnershipMetadata.Reading {
      OwnershipMetadata.read(text, name: name, uuid: uuid, host: host, key: key)
    }
    let reading = read(xml)
    #expect(reading.ownership == ownership)
    #expect(reading.trust == .verified)
    #expect(reading.digest.hasPrefix("seal:"))
    #expect(read(xml, uuid: Self.uuid.uppercased()).trust == .verified, "UUIDs compare case-insensitively")

    // A clone (new UUID), a copy under another name, a copy on another host.
    #expect(read(xml, uuid: "6f1c0a52-3c1e-4a0e-9d6a-000000000002").trust.mismatchReason?.contains("bound to UUID") == true)
    #expect(read(xml, name: "web-2-clone").trust.mismatchReason?.contains("looks like a copy of web-2") == true)
    #expect(read(xml, host: "qemu:///system").trust.mismatchReason?.contains("written for web-2 on test:///default") == true)
    // Without the key: the binding is checked, the seal cannot be.
    #expect(read(xml, key: nil).trust == .unchecked(keyID: key.id))
    #expect(read(xml, uuid: "other", key: nil).trust.mismatchReason != nil, "a copy is a copy with or without the key")
    // Another project's key.
    let stranger = RecordKey(bytes: Array(repeating: 9, count: 32), project: "p")
    #expect(read(xml, key: stranger).trust.mismatchReason?.contains("sealed with key") == true)

    // Edits: protect, project, index, disk; and a copy edited to its own name and UUID.
    for (from, to) in [
      ("protect=\"false\"", "protect=\"true\""), ("project=\"p\"", "project=\"q\""), ("index=\"2\"", "index=\"1\""),
      ("generation=\"1\"", "generation=\"7\""),
    ] {
      let edited = xml.replacingOccurrences(of: from, with: to)
      #expect(edited != xml)
      let tampered = read(edited)
      #expect(tampered.trust.mismatchReason?.contains("does not verify") == true, "\(from) → \(to)")
      #expect(tampered.digest != reading.digest && !tampered.digest.hasPrefix("seal:"), "a broken seal is digested whole")
    }
    let renamed = xml.replacingOccurrences(of: "name=\"web-2\"", with: "name=\"web-9\"").replacingOccurrences(of: Self.uuid, with: "6f1c0a52-3c1e-4a0e-9d6a-000000000009")
    #expect(read(renamed, name: "web-9", uuid: "6f1c0a52-3c1e-4a0e-9d6a-000000000009").trust.mismatchReason?.contains("does not verify") == true)

    // One value re-split into two (a newline is data in an attribute): the canonical bytes are
    // length-prefixed, so this is not the same record. Under a `key=value` line format it was.
    var guarded = ownership
    guarded.protect = true
    guarded.replicas = 3
    let sealed = OwnershipMetadata.render(guarded, key: key, binding: .init(uuid: Self.uuid, host: Self.host))
    let resplit = sealed.replacingOccurrences(of: "protect=\"true\" replicas=\"3\"", with: "protect=\"true&#10;replicas=3\"")
    #expect(resplit != sealed)
    #expect(read(sealed).trust == .verified)
    #expect(read(resplit).trust.mismatchReason?.contains("does not verify") == true)
    #expect(read(resplit).ownership?.protect == true, "a protect value that is not exactly 'false' protects")

    // Records an older Drover wrote: legacy while intact, a mismatch once edited; a forged
    // old-style record with a recomputed seal is legacy here and refused by `TrustedRecords`
    // as soon as the project has a keyed record (see TrustedRecordsTests).
    let legacy = OwnershipMetadata.renderLegacy(ownership)
    #expect(read(legacy).trust == .legacy)
    #expect(read(legacy.replacingOccurrences(of: "generation=\"1\"", with: "generation=\"7\"")).trust.mismatchReason?.contains("edited by hand") == true)
    #expect(read(legacy.replacing(#/ seal="[0-9a-f]+"/#, with: "")).trust == .legacy, "records from before seals existed")
  }

  @Test func exportedKeysRoundTripAndBadOnesAreRefused() throws {
    let key = RecordKey.generate(project: "web-fleet")
    #expect(key.bytes.count == 32)
    #expect(try RecordKey.parse(key.exported).get() == key)
    #expect(try RecordKey.parse(key.exported + "\n").get() == key)
    for bad in ["", "drover-key-1:web-fleet:abc", "drover-key-2:web-fleet:" + String(repeating: "a", count: 64),
      "drover-key-1:web-fleet:" + String(repeating: "g", count: 64), "drover-key-1:web-fleet:+f" + String(repeating: "a", count: 62)] {
      #expect((try? RecordKey.parse(bad).get()) == nil, "\(bad)")
    }
    #expect(RecordKey.generate(project: "x").id != RecordKey.generate(project: "x").id)
  }

  /// The record is the `drover:node` element in Drover's namespace: one borrowing the prefix for
  /// another namespace is ignored, and two in Drover's namespace (one hidden inside someone else's
  /// metadata) make the domain foreign, never a node.
  @Test func theRecordIsFoundByItsNamespaceNotItsPrefix() throws {
    let name = TestWorld.unique("ns")
    let world = try TestWorld.isolated(project: "p")
    let spec = world.pool(name, replicas: 1)
    let node = NodeDefinition(ownership: desiredOwnership(spec, index: 1, digest: "", generation: 1, project: "p"))
    let uuid = UUID().uuidString.lowercased()
    let xml = DomainXML.render(node, bootsNodes: false, uuid: uuid, key: TestWorld.key("p"), host: world.uri)
    let decoy = "<drover:node xmlns:drover=\"https://example.invalid/other\" pool=\"\(name)\" name=\"\(name)-1\" index=\"1\" image=\"x\" generation=\"1\" vcpu=\"1\" memory_mib=\"64\" disk_mib=\"1\"/>"
    let decoyFirst = xml.replacingOccurrences(of: "<metadata>\n", with: "<metadata>\n    \(decoy)\n")
    #expect(decoyFirst != xml)
    let domain = try world.backend.connection.defineDomain(xml: decoyFirst)
    defer { try? domain.undefine() }
    var seen = try #require(try world.backend.observe().domains.first { $0.name == "\(name)-1" })
    #expect(seen.trust == .verified && seen.ownership?.image == "demo@v1", "the decoy in another namespace is ignored")

    let real = try #require(DomainXMLReaderProbe.element(in: xml))
    let hidden = xml.replacingOccurrences(of: "<metadata>\n", with: "<metadata>\n    <x:wrap xmlns:x=\"https://example.invalid/x\">\(real)</x:wrap>\n")
    try domain.undefine()
    let twice = try world.backend.connection.defineDomain(xml: hidden)
    defer { try? twice.undefine() }
    seen = try #require(try world.backend.observe().domains.first { $0.name == "\(name)-1" })
    #expect(seen.ownership == nil, "two records in Drover's namespace: none is trusted")
  }

  /// #18: a node's NIC gets a MAC derived from project, pool, index and generation: stable for
  /// the node, another for its replacement (a surge pair never shares one), locally administered.
  @Test func nodesGetStableMACsThatChangeWithTheGeneration() throws {
    let world = try TestWorld.isolated(project: "p")
    var spec = world.pool(TestWorld.unique("mac"), replicas: 2)
    spec.network = "default"
    func mac(_ index: Int, _ generation: Int, project: String = "p") -> String {
      let node = NodeDefinition(ownership: desiredOwnership(spec, index: index, digest: "", generation: generation, project: project))
      let xml = DomainXML.render(node, bootsNodes: false, uuid: "u", key: TestWorld.key(project), host: world.uri)
      guard let r = xml.range(of: "<mac address='") else { return "none" }
      return String(xml[r.upperBound...].prefix(17))
    }
    #expect(mac(1, 1) == mac(1, 1) && mac(1, 1) == NodeMAC.address(project: "p", pool: spec.name, index: 1, generation: 1))
    let all = [mac(1, 1), mac(1, 2), mac(2, 1), mac(2, 2), mac(1, 1, project: "q")]
    #expect(Set(all).count == all.count, "\(all)")
    for m in all {
      let first = try #require(UInt8(m.prefix(2), radix: 16))
      #expect(first & 0b11 == 0b10 && m.split(separator: ":").count == 6, "locally administered unicast: \(m)")
    }
  }

  /// #18: a domain the plan chose KVM for is `type='kvm'` with a host-model CPU; TCG stays `qemu`.
  @Test func kvmDomainsGetTheHostModelCPU() {
    let spec = PoolSpec(name: "k", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
    var node = NodeDefinition(ownership: desiredOwnership(spec, index: 1, digest: "", generation: 1, project: "p"))
    node.accel = .kvm
    let kvm = DomainXML.render(node, bootsNodes: true, uuid: "u", key: TestWorld.key("p"), host: "qemu:///system")
    #expect(kvm.hasPrefix("<domain type='kvm'>") && kvm.contains("<cpu mode='host-model'/>") && kvm.contains("<memballoon model='none'/>"))
    node.accel = .tcg
    let tcg = DomainXML.render(node, bootsNodes: true, uuid: "u", key: TestWorld.key("p"), host: "qemu:///system")
    #expect(tcg.hasPrefix("<domain type='qemu'>") && !tcg.contains("<cpu"))
  }
}

/// Finds the record element in rendered XML (the tests' own scan, independent of Drover's reader).
enum DomainXMLReaderProbe {
  static func element(in xml: String) -> String? {
    guard let start = xml.range(of: "<drover:node xmlns:drover=\"https://drover.dev/xmlns/node/1\"") else { return nil }
    let rest = xml[start.lowerBound...]
    if let close = rest.range(of: "</drover:node>") { return String(rest[..<close.upperBound]) }
    guard let end = rest.range(of: "/>") else { return nil }
    return String(rest[..<end.upperBound])
  }
}
