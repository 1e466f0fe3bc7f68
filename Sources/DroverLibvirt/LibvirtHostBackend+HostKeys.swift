import DroverBasics
import DroverModel
import Libvirt

/// Node host keys kept in each domain (`HostKeysMetadata`): read by any machine that finds no pin
/// of its own, written once by the machine that pinned them first from the node's console.
extension LibvirtHostBackend: HostKeyRecording {
  public func recordedHostKeys(node: String, uuid: String) -> RecordedHostKeys {
    do {
      return try guarded("reading the host keys of \(node)") { [self] in
        calls.record("lookup")
        guard let domain = try connection.domain(named: node), OwnershipMetadata.sameUUID(domain.uuid, uuid) else {
          return .cannotCheck("the domain \(node) with UUID \(uuid) is gone")
        }
        calls.record("metadata")
        guard let xml = try domain.metadata(namespace: HostKeysMetadata.namespace, inactive: true) else { return .none }
        return HostKeysMetadata.read(xml, name: node, uuid: domain.uuid, key: keyring.key)
      }
    } catch {
      return .cannotCheck("cannot read its domain record: \(Diagnostic.line(of: error))")
    }
  }

  public func recordHostKeys(_ keys: [String], node: String, uuid: String) throws {
    guard let key = keyring.key else {
      throw HostError(uri: uri, node: node, operation: "refusing to seal host keys", reason: "no key for project \(keyring.project) to seal them with")
    }
    try guarded("sealing the host keys of \(node)") { [self] in
      // Only into a record this project wrote for this very domain.
      let owned = try ownedNode(node, uuid: uuid)
      do {
        calls.record("metadata")
        if let xml = try owned.domain.metadata(namespace: HostKeysMetadata.namespace, inactive: true) {
          let current = HostKeysMetadata.read(xml, name: node, uuid: owned.domain.uuid, key: key)
          switch current {
          case .keys(let sealed) where Set(sealed) == Set(keys): return
          case .keys:
            throw HostError(
              uri: uri, node: node, operation: "refusing to seal host keys",
              reason: "its record already holds other host keys; a node's keys never change (a rebuilt node is replaced)")
          case .forged(let why), .cannotCheck(let why):
            throw HostError(uri: uri, node: node, operation: "refusing to seal host keys", reason: "its record already holds host keys that are not trusted: \(why)")
          case .none: break
          }
        }
        calls.record("state")
        let active = try owned.domain.state().isActive
        calls.record("setMetadata")
        try owned.domain.setMetadata(
          HostKeysMetadata.render(keys, name: node, uuid: owned.domain.uuid, key: key), key: HostKeysMetadata.prefix, namespace: HostKeysMetadata.namespace,
          live: active)
      } catch let error as LibvirtError {
        throw HostError(uri: uri, node: node, operation: "cannot seal host keys", libvirt: error)
      }
    }
  }
}
