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
    let world = kind == "isolated" ? try TestWorld.isolated() : try TestWorld.daemon()
    let name = TestWorld.unique("esc")
    let spec = world.pool(name, replicas: 1, labels: Self.hostile)
    let ownership = desiredOwnership(spec, index: 1, digest: "abc", generation: 1, project: "p<&>\"'")
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
      xml: DomainXML.render(NodeDefinition(ownership: desiredOwnership(world.pool(name + "r", replicas: 1), index: 1, digest: "", generation: 1, project: "p")), bootsNodes: world.backend.bootsNodes))
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

  @Test func readingCombinesParseSealAndDigest() throws {
    let spec = PoolSpec(name: "web", hosts: ["test:///default"], replicas: 2, image: ImageRef(parsing: "demo@v1")!, labels: Self.hostile)
    let ownership = desiredOwnership(spec, index: 1, digest: "abc", generation: 1, project: "p")
    let xml = OwnershipMetadata.render(ownership)
    let reading = OwnershipMetadata.read(xml)
    #expect(reading.ownership == ownership)
    #expect(reading.intact)
    #expect(reading.digest.hasPrefix("seal:"))

    var other = ownership
    other.generation = 2
    #expect(OwnershipMetadata.read(OwnershipMetadata.render(other)).digest != reading.digest)

    let edited = xml.replacingOccurrences(of: "generation=\"1\"", with: "generation=\"7\"")
    let tampered = OwnershipMetadata.read(edited)
    #expect(!tampered.intact, "an edit by hand breaks the seal")
    #expect(tampered.ownership?.generation == 7)
    #expect(tampered.digest != reading.digest && !tampered.digest.hasPrefix("seal:"), "a broken seal is digested whole")
    let unsealed = xml.replacing(#/ seal="[0-9a-f]+"/#, with: "")
    #expect(unsealed != xml)
    #expect(OwnershipMetadata.read(unsealed).intact, "records from before seals existed count as intact")
  }
}
