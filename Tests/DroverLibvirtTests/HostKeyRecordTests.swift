import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt
import Testing

/// #37: a node's SSH host keys are sealed into its own domain (`HostKeysMetadata`), read back by
/// any machine holding the project key, and never trusted when edited, copied onto another domain
/// or sealed with another key — on libvirt's test driver, through the real metadata calls.
@Suite struct HostKeyRecordTests {
  static let keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAxkNbEs0tIIyH6CEhOw8lKUIVPgqBZ7k8xLw0XyqRrP"
  static let keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb2e5bcyXpGEuRShq7ymoEE8T4QeEg9V9p6Z1nWnX0X"

  func twoNodes() throws -> (TestWorld, Domain, Domain) {
    let world = try TestWorld.isolated()
    let (_, diagnostics, outcome) = ObserveAndApplyTests().converge(world, [world.pool("web", replicas: 2)])
    #expect(diagnostics.isEmpty && outcome.exitStatus == 0)
    let web1 = try #require(try world.backend.connection.domain(named: "web-1"))
    let web2 = try #require(try world.backend.connection.domain(named: "web-2"))
    return (world, web1, web2)
  }

  @Test func sealedKeysAreReadBackByAnyMachineWithTheKeyAndChangeNoPlan() throws {
    let (world, web1, _) = try twoNodes()
    let backend = world.backend
    #expect(backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) == .none)
    let digest = WorldObserver.observe([backend]).hosts.values.first?.domains.first { $0.name == "web-1" }?.metadataDigest
    try backend.recordHostKeys([Self.keyA], node: "web-1", uuid: web1.uuid)
    #expect(backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) == .keys([Self.keyA]))
    // The same keys again are no change; other keys are never sealed over them.
    try backend.recordHostKeys([Self.keyA], node: "web-1", uuid: web1.uuid)
    let refused = #expect(throws: HostError.self) { try backend.recordHostKeys([Self.keyB], node: "web-1", uuid: web1.uuid) }
    #expect(refused?.message.contains("a node's keys never change") == true, "\(refused?.message ?? "")")
    #expect(backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) == .keys([Self.keyA]))
    // Another machine with the project key reads them; one without cannot check them; one with
    // another key does not trust them.
    let noKey = LibvirtHostBackend(connection: backend.connection, keyring: Keyring(project: "default", key: nil), imagePool: backend.imagePool)
    guard case .cannotCheck = noKey.recordedHostKeys(node: "web-1", uuid: web1.uuid) else {
      Issue.record("no key: cannot check")
      return
    }
    let otherKey = LibvirtHostBackend(
      connection: backend.connection, keyring: Keyring(project: "default", key: RecordKey(bytes: Array(repeating: 9, count: 32), project: "default")),
      imagePool: backend.imagePool)
    guard case .forged(let why) = otherKey.recordedHostKeys(node: "web-1", uuid: web1.uuid) else {
      Issue.record("another key: not trusted")
      return
    }
    #expect(why.contains("sealed with key"), "\(why)")
    // The ownership record and the plan's fingerprint are untouched: a saved plan stays valid.
    let after = WorldObserver.observe([backend]).hosts.values.first?.domains.first { $0.name == "web-1" }
    #expect(after?.metadataDigest == digest && after?.trust == .verified)
    #expect(ObserveAndApplyTests().replan(world, [world.pool("web", replicas: 2)]).actions.isEmpty)
    // A UUID that is not the domain's: nothing to read for it.
    guard case .cannotCheck = backend.recordedHostKeys(node: "web-1", uuid: "00000000-0000-0000-0000-000000000000") else {
      Issue.record("another UUID")
      return
    }
  }

  @Test func anEditedOrCopiedRecordIsNeverTrusted() throws {
    let (world, web1, web2) = try twoNodes()
    let backend = world.backend
    try backend.recordHostKeys([Self.keyA], node: "web-1", uuid: web1.uuid)
    let sealed = try #require(try web1.metadata(namespace: HostKeysMetadata.namespace, inactive: true))
    // Copied onto another domain: bound to web-1's name and UUID.
    let copy = sealed.replacingOccurrences(of: "xmlns:droverkeys=\"\(HostKeysMetadata.namespace)\"", with: "")
      .replacingOccurrences(of: "droverkeys:", with: "")
    try web2.setMetadata(copy, key: HostKeysMetadata.prefix, namespace: HostKeysMetadata.namespace, live: true)
    guard case .forged(let copied) = backend.recordedHostKeys(node: "web-2", uuid: web2.uuid) else {
      Issue.record("a copy is not trusted")
      return
    }
    #expect(copied.contains("not this domain: a copy"), "\(copied)")
    #expect(throws: HostError.self) { try backend.recordHostKeys([Self.keyB], node: "web-2", uuid: web2.uuid) }
    // Another key put in web-1's record by hand: its seal no longer verifies.
    try web1.setMetadata(copy.replacingOccurrences(of: Self.keyA, with: Self.keyB), key: HostKeysMetadata.prefix, namespace: HostKeysMetadata.namespace, live: true)
    guard case .forged(let edited) = backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) else {
      Issue.record("an edit is not trusted")
      return
    }
    #expect(edited.contains("do not verify under the project key"), "\(edited)")
    // Not a list of keys at all.
    try web1.setMetadata("<hostkeys name=\"web-1\"><key value=\"not a key\"/></hostkeys>", key: HostKeysMetadata.prefix, namespace: HostKeysMetadata.namespace, live: true)
    guard case .forged = backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) else {
      Issue.record("garbage is not trusted")
      return
    }
    // A domain Drover does not own gets no keys sealed into it.
    let foreign = try world.defineForeign("someone-else")
    #expect(throws: HostError.self) { try backend.recordHostKeys([Self.keyA], node: "someone-else", uuid: foreign.uuid) }
  }

  /// `drover adopt` is a person's word that the domain is the node: the keys sealed for it are
  /// dropped, to be learned again from what it shows now (twice: dropping none is no error).
  @Test func adoptingANodeDropsItsSealedKeys() throws {
    let (world, web1, _) = try twoNodes()
    let backend = world.backend
    try backend.recordHostKeys([Self.keyA], node: "web-1", uuid: web1.uuid)
    let record = try #require(WorldObserver.observe([backend]).hosts.values.first?.domains.first { $0.name == "web-1" }?.ownership)
    try backend.adopt(node: "web-1", uuid: web1.uuid, as: record)
    #expect(backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) == .none)
    try backend.adopt(node: "web-1", uuid: web1.uuid, as: record)
    try backend.recordHostKeys([Self.keyB], node: "web-1", uuid: web1.uuid)
    #expect(backend.recordedHostKeys(node: "web-1", uuid: web1.uuid) == .keys([Self.keyB]))
  }
}
