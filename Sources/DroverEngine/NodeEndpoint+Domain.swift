import DroverModel

extension NodeEndpoint {
  /// The endpoint of an owned domain on `backend`: its console (through the host where the host
  /// keeps it), its address (the record's static one, else its lease), its running state, and its
  /// SSH pins under the name-and-UUID alias. One place for the rollout runner and heal.
  static func of(
    domain: ObservedDomain, ownership o: NodeOwnership, host: String, backend: (any HostBackend)?, consoleLog: String?, ssh: NodeSSHAccess?,
    onNetwork: Bool
  ) -> NodeEndpoint {
    var ep = NodeEndpoint(name: o.node, host: host, pool: o.pool, image: o.image, consoleLog: consoleLog)
    ep.ssh = ssh
    ep.hostKeyAlias = NodeSSHAccess.alias(node: domain.name, uuid: domain.uuid)
    // A static address is the node's own record's (its seed's), not what the spec says now.
    ep.address = o.address
    ep.attach(to: backend, uuid: domain.uuid)
    if ep.address == nil, onNetwork { ep.address = ep.resolveAddress?() }
    ep.variables = NodeVariables(ownership: o, address: ep.address)
    return ep
  }

  /// What the node's host answers for it: its address (a lease), its console where the host
  /// keeps it, whether it runs, and its domain record as the keeper of its host keys. One place
  /// for apply's health checks, the rollout runner and heal.
  mutating func attach(to backend: (any HostBackend)?, uuid: String?) {
    let node = name
    if let resolver = backend as? AddressResolving {
      nonisolated(unsafe) let r = resolver
      resolveAddress = { r.address(of: node) }
    }
    if let reader = backend as? ConsoleReading, reader.readsConsoles {
      nonisolated(unsafe) let r = reader
      readConsole = { r.console(of: node) }
    }
    if let backend {
      isRunning = { backend.isRunning(node: node) }
    }
    if let uuid { hostKeyRecord = HostKeyRecord.of(backend, node: node, uuid: uuid) }
  }
}
