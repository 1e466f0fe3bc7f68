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
    let node = o.node
    if let resolver = backend as? AddressResolving {
      nonisolated(unsafe) let r = resolver
      ep.resolveAddress = { r.address(of: node) }
      if ep.address == nil, onNetwork { ep.address = r.address(of: node) }
    }
    if let reader = backend as? ConsoleReading, reader.readsConsoles {
      nonisolated(unsafe) let r = reader
      ep.readConsole = { r.console(of: node) }
    }
    if let backend {
      ep.isRunning = { backend.isRunning(node: node) }
    }
    return ep
  }
}
