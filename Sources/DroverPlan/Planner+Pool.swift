import DroverBasics
import DroverModel

/// Plans one declared pool against its owned nodes.
func planPool(
  _ pool: PoolSpec, existing: [(host: String, domain: ObservedDomain, ownership: NodeOwnership)], observed: ObservedWorld,
  options: PlanOptions, diagnostics: inout [Diagnostic]
) -> [PlannedAction] {
  var actions: [PlannedAction] = []
  let digest = options.imageDigests[pool.image.description] ?? ""
  // One node per index; extra copies (e.g. the same node on two hosts) are deleted.
  var byIndex: [Int: (host: String, domain: ObservedDomain, ownership: NodeOwnership)] = [:]
  for n in existing.sorted(by: { ($0.ownership.index, $0.host) < ($1.ownership.index, $1.host) }) {
    let keep = byIndex[n.ownership.index].map { current in
      // Prefer a copy on a host the pool still lists.
      !pool.hosts.contains(current.host) && pool.hosts.contains(n.host)
    } ?? true
    if keep {
      if let dropped = byIndex[n.ownership.index] {
        actions.append(duplicateDelete(dropped, pool: pool))
      }
      byIndex[n.ownership.index] = n
    } else {
      actions.append(duplicateDelete(n, pool: pool))
    }
  }

  for index in 1...max(1, pool.replicas) where index <= pool.replicas {
    let name = "\(pool.name)-\(index)"
    guard let current = byIndex[index] else {
      let host = pool.hosts[(index - 1) % pool.hosts.count]
      if let foreign = observed.hosts[host]?.domains.first(where: { $0.name == name }) {
        let owner = foreign.ownership.map { "belongs to Drover project '\($0.project)'" } ?? "is not managed by Drover"
        diagnostics.append(
          .error(
            "plan.foreign-domain",
            "domain \(foreign.name) (uuid \(foreign.uuid)) on \(host) \(owner); node \(name) of pool \(pool.name) cannot be created",
            subject: "node \(name) on \(host)",
            hint: "Drover never touches a domain it does not own: rename or remove that domain, or rename the pool"))
        continue
      }
      let after = NodeDefinition(ownership: desiredOwnership(pool, index: index, digest: digest, generation: 1, project: options.project))
      actions.append(
        PlannedAction(
          kind: .create, pool: pool.name, node: name, host: host,
          reason: byIndex.isEmpty && existing.isEmpty ? "new node" : "missing node (replicas: \(pool.replicas))", after: after))
      continue
    }
    actions += compare(
      current, with: pool, digest: digest, project: options.project, forceReplace: options.forceReplace.contains(name))
  }

  // Scale down: highest index first.
  for (index, n) in byIndex.sorted(by: { $0.key > $1.key }) where index > pool.replicas {
    actions.append(
      PlannedAction(
        kind: .delete, pool: pool.name, node: n.domain.name, host: n.host,
        reason: "scale down to \(pool.replicas) replica\(pool.replicas == 1 ? "" : "s") (index \(index) > \(pool.replicas))",
        uuid: n.domain.uuid, before: n.ownership))
  }

  if pool.protect {
    for a in actions where a.kind == .delete || a.kind == .replace {
      diagnostics.append(
        .error(
          "plan.protected", "pool \(pool.name) is protected: the plan would \(a.kind == .delete ? "destroy" : "replace") node \(a.node) (\(a.reason))",
          subject: "node \(a.node) on \(a.host)", hint: "set protect: false in the pool to allow it"))
    }
  }
  return actions
}

func duplicateDelete(_ n: (host: String, domain: ObservedDomain, ownership: NodeOwnership), pool: PoolSpec) -> PlannedAction {
  PlannedAction(
    kind: .delete, pool: pool.name, node: n.domain.name, host: n.host,
    reason: "duplicate of node \(n.domain.name) on another host", uuid: n.domain.uuid, before: n.ownership)
}

/// Compares an existing node with its spec: replace, update, start, or nothing.
func compare(
  _ n: (host: String, domain: ObservedDomain, ownership: NodeOwnership), with pool: PoolSpec, digest: String, project: String,
  forceReplace: Bool = false
)
  -> [PlannedAction]
{
  let o = n.ownership
  let desiredDigest = digest.isEmpty ? o.digest : digest
  var after = desiredOwnership(pool, index: o.index, digest: desiredDigest, generation: o.generation + 1, project: project)

  if !pool.hosts.contains(n.host) {
    // A move is a delete on the old host and a create on the new one, both shown.
    let host = pool.hosts[(o.index - 1) % pool.hosts.count]
    return [
      PlannedAction(
        kind: .delete, pool: pool.name, node: o.node, host: n.host, reason: "host \(n.host) is no longer in hosts",
        uuid: n.domain.uuid, before: o),
      PlannedAction(
        kind: .create, pool: pool.name, node: o.node, host: host, reason: "moved from \(n.host)",
        after: NodeDefinition(ownership: after)),
    ]
  }
  var replaceReasons: [String] = []
  if o.image != after.image {
    replaceReasons.append("image \(o.image) → \(after.image)")
  } else if !digest.isEmpty && !o.digest.isEmpty && o.digest != digest {
    replaceReasons.append("image \(o.image) was rebuilt (digest \(o.digest.prefix(12)) → \(digest.prefix(12)))")
  }
  if o.diskMiB != after.diskMiB { replaceReasons.append("disk \(o.diskMiB)MiB → \(after.diskMiB)MiB (a new disk)") }
  if o.network != after.network {
    replaceReasons.append("network \(o.network ?? "none") → \(after.network ?? "none")")
  }
  if forceReplace { replaceReasons.append("replacement requested with --replace") }
  if !replaceReasons.isEmpty {
    return [
      PlannedAction(
        kind: .replace, pool: pool.name, node: o.node, host: n.host, reason: replaceReasons.joined(separator: "; "),
        uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after))
    ]
  }

  var actions: [PlannedAction] = []
  var resize: [String] = []
  if o.vcpu != after.vcpu { resize.append("vcpu \(o.vcpu) → \(after.vcpu)") }
  if o.memoryMiB != after.memoryMiB { resize.append("memory \(o.memoryMiB)MiB → \(after.memoryMiB)MiB") }
  var metadataOnly: [String] = []
  if o.labels != after.labels { metadataOnly.append("labels") }
  if o.protect != after.protect { metadataOnly.append("protect \(o.protect) → \(after.protect)") }
  if !n.domain.metadataIntact { metadataOnly.append("ownership record was edited by hand; rewriting it") }
  if !resize.isEmpty {
    actions.append(
      PlannedAction(
        kind: .update, pool: pool.name, node: o.node, host: n.host,
        reason: (resize + metadataOnly).joined(separator: ", ") + (n.domain.isActive ? " (restarts the node)" : ""),
        uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after), restart: true))
  } else if !metadataOnly.isEmpty {
    actions.append(
      PlannedAction(
        kind: .update, pool: pool.name, node: o.node, host: n.host, reason: metadataOnly.joined(separator: ", ") + " (in place)",
        uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after)))
  } else {
    after.generation = o.generation
  }
  if !n.domain.isActive {
    actions.append(
      PlannedAction(
        kind: .start, pool: pool.name, node: o.node, host: n.host, reason: "node is \(n.domain.state)", uuid: n.domain.uuid,
        before: o, after: NodeDefinition(ownership: after)))
  }
  return actions
}
