import DroverBasics
import DroverModel

/// One difference between what Drover last applied and what a host really has.
public struct DriftFinding: Sendable, Codable, Hashable {
  public enum Kind: String, Sendable, Codable, CaseIterable {
    case missing, state, vcpu, memory, disk, network, image
    case metadataEdited = "metadata-edited"
    case metadataRemoved = "metadata-removed"
    case unwanted
    /// The node never passed its health checks after it was created.
    case unhealthy
    case foreignName = "foreign-name"
    /// Not drift: the spec changed and has not been applied yet.
    case pending
    /// A domain carrying a record of this project that does not verify or is bound to another
    /// domain: a clone, a copy, an edit or a forgery. Drover never acts on it.
    case recordMismatch = "record-mismatch"
    /// Not drift: a record an older Drover wrote, which the next apply seals with the project key.
    case unsealed = "record-unsealed"
    /// Not drift: a node a rollout replaced and keeps shut off for a warm rollback (#45).
    case kept
  }

  public var kind: Kind
  public var pool: String
  public var node: String
  public var host: String
  public var expected: String
  public var observed: String
  /// The command that makes it right again.
  public var fix: String

  public var isDrift: Bool { kind != .pending && kind != .unsealed && kind != .kept }
}

/// Finds out-of-band changes to owned domains, separately from pending spec changes.
///
/// Drift compares the world with the ownership record Drover wrote (what it last applied);
/// pending compares that record with the current spec. So "someone ran virsh setmem" is drift and
/// "replicas was raised in Git" is pending, and the two never mix. Pure: reads its arguments only.
///
/// - Parameter imageDigests: the current digest of each image reference, where known; a node
///   recorded with another digest runs an image that no longer matches.
///
/// - Parameter judgedUnhealthy: nodes the last heal pass found unhealthy (by domain UUID, with
///   why, from the heal ledger): reported as `unhealthy` while the same domain is still there.
public func detectDrift(
  pools: [PoolSpec], observed: ObservedWorld, project: String = "default", imageDigests: [String: String] = [:], keyHeld: Bool = false,
  judgedUnhealthy: [String: String] = [:]
) -> [DriftFinding] {
  var findings: [DriftFinding] = []
  let declared = Dictionary(pools.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
  var ownedByPool: [String: [(String, ObservedDomain, NodeOwnership)]] = [:]

  let records = TrustedRecords(observed, project: project, keyHeld: keyHeld)
  let refusedNames = records.refusedNames
  for (entry, why) in records.refused {
    findings.append(
      DriftFinding(
        kind: .recordMismatch, pool: entry.ownership.pool, node: entry.domain.name, host: entry.host,
        expected: "a record Drover sealed for this domain", observed: why,
        fix: "virsh -c \(entry.host) undefine \(entry.domain.name)  # if it is a copy; or: drover adopt \(entry.domain.name) --host \(entry.host)"))
  }
  for (uri, d, o) in records.owned {
    if let keeping = o.kept {
      // Shut off on purpose, not a replica: shown as kept, never as drift.
      findings.append(
        DriftFinding(
          kind: .kept, pool: o.pool, node: d.name, host: uri, expected: "kept for rollback until \(KeptTime.text(keeping.until))",
          observed: "kept by rollout \(keeping.rollout) (\(o.image), \(d.state))",
          fix: "drover rollout undo \(o.pool)  # starts it again; drover rollout finish \(o.pool) removes it"))
      continue
    }
    ownedByPool[o.pool, default: []].append((uri, d, o))
    if d.trust == .legacy {
      findings.append(
        DriftFinding(
          kind: .unsealed, pool: o.pool, node: d.name, host: uri, expected: "a record sealed with the project key",
          observed: "a record an older Drover wrote", fix: "drover apply  # seals it"))
    }
    findings += shapeFindings(d, o, host: uri, imageDigests: imageDigests)
    if declared[o.pool] == nil {
      findings.append(
        DriftFinding(
          kind: .unwanted, pool: o.pool, node: d.name, host: uri, expected: "no node (no spec declares pool \(o.pool))",
          observed: "owned node \(d.name) (\(d.state))", fix: "drover apply --prune  # deletes it; or restore pools/\(o.pool).yaml"))
    }
  }

  for pool in pools.sorted(by: { $0.name < $1.name }) {
    let nodes = ownedByPool[pool.name] ?? []
    let present = Set(nodes.map(\.2.index))
    let recorded = max(nodes.map(\.2.replicas).max() ?? 0, present.max() ?? 0)
    for index in 1...max(1, pool.replicas) where index <= pool.replicas && !present.contains(index) {
      let name = NodeName.of(pool: pool.name, index: index)
      let host = placement(pool, index: index)
      if let squatter = observed.hosts[host]?.domains.first(where: { $0.name == name && !($0.ownership.map { $0.kept != nil && $0.project == project } ?? false) }) {
        if refusedNames.contains(TrustedRecords.nameKey(host: host, name: name)) { continue }  // reported as record-mismatch
        let removed = squatter.ownership == nil && squatter.actual?.title == "drover node \(name) of pool \(pool.name)"
        findings.append(
          DriftFinding(
            kind: removed ? .metadataRemoved : .foreignName, pool: pool.name, node: name, host: host,
            expected: "node \(name) owned by Drover (project \(project))",
            observed: removed
              ? "domain \(name) (uuid \(squatter.uuid)) has lost its Drover metadata"
              : "domain \(name) (uuid \(squatter.uuid)) is \(squatter.ownership.map { "owned by Drover project \($0.project)" } ?? "not managed by Drover")",
            fix: removed
              ? "virsh -c \(host) undefine \(name)  # after checking it, then: drover apply"
              : "rename or remove the foreign domain, or rename pool \(pool.name)"))
      } else if index <= recorded {
        findings.append(
          DriftFinding(
            kind: .missing, pool: pool.name, node: name, host: host, expected: "node \(name) defined",
            observed: "no domain \(name) on \(host)", fix: "drover apply --target \(name)"))
      } else {
        findings.append(
          DriftFinding(
            kind: .pending, pool: pool.name, node: name, host: host, expected: "replicas: \(pool.replicas)",
            observed: "\(recorded) node\(recorded == 1 ? "" : "s") applied", fix: "drover apply --target \(pool.name)"))
      }
    }
    for (uri, d, o) in nodes {
      if o.index > pool.replicas {
        findings.append(
          DriftFinding(
            kind: .pending, pool: pool.name, node: d.name, host: uri, expected: "replicas: \(pool.replicas)",
            observed: "node index \(o.index) exists", fix: "drover apply --target \(pool.name)"))
        continue
      }
      let changes = specChanges(o, pool)
      if !changes.isEmpty {
        findings.append(
          DriftFinding(
            kind: .pending, pool: pool.name, node: d.name, host: uri, expected: "spec: " + changes.map(\.expected).joined(separator: ", "),
            observed: "applied: " + changes.map(\.applied).joined(separator: ", "), fix: "drover apply --target \(d.name)"))
      }
    }
  }
  for (uri, d, o) in records.owned where declared[o.pool] != nil && o.isServing {
    guard let why = judgedUnhealthy[d.uuid] else { continue }
    findings.append(
      DriftFinding(
        kind: .unhealthy, pool: o.pool, node: d.name, host: uri, expected: "a healthy node (libvirt state and heartbeat)",
        observed: "unhealthy at the last heal pass: \(why)", fix: "drover heal  # replaces it once remediation allows"))
  }
  return findings.sorted { ($0.pool, $0.node, $0.kind.rawValue) < ($1.pool, $1.node, $1.kind.rawValue) }
}

/// Differences between a node's real shape and its ownership record.
func shapeFindings(_ d: ObservedDomain, _ o: NodeOwnership, host: String, imageDigests: [String: String]) -> [DriftFinding] {
  var f: [DriftFinding] = []
  func add(_ kind: DriftFinding.Kind, _ expected: String, _ observed: String, _ fix: String) {
    f.append(DriftFinding(kind: kind, pool: o.pool, node: d.name, host: host, expected: expected, observed: observed, fix: fix))
  }
  let reapply = "drover apply --target \(d.name)"
  let rebuild = "drover apply --replace \(d.name)"
  if d.state != "running" {
    add(.state, "running", d.state, d.isActive ? "virsh -c \(host) resume \(d.name)" : reapply)
  }
  if o.healthFailed {
    add(.unhealthy, "a node that passed its health checks", "failed its health check at creation", "drover apply  # replaces it")
  }
  for change in outsideChanges(o, actual: d.actual) {
    switch change {
    case .vcpu(let recorded, let observed, let maximum):
      add(.vcpu, "\(recorded) vCPU (config)", observed == maximum ? "\(observed) vCPU" : "\(observed) vCPU, maximum \(maximum)", reapply + "  # restarts it, same disk")
    case .memory(let recorded, let observed):
      add(.memory, "\(recorded)MiB (config)", "\(observed / 1024)MiB", reapply + "  # restarts it, same disk")
    case .disk(let recorded, let observed):
      add(.disk, recorded.isEmpty ? "no disk" : recorded, observed.isEmpty ? "no disk" : observed.joined(separator: ", "), reapply + "  # replaces it")
    case .network(let recorded, let observed):
      add(.network, "network \(recorded ?? "none")", "network \(observed.isEmpty ? "none" : observed.joined(separator: ", "))", reapply + "  # replaces it")
    }
  }
  if let a = d.actual {
    let expectedKiB = o.memoryMiB * 1024
    if d.isActive && a.liveVcpu != o.vcpu && a.vcpu == o.vcpu { add(.vcpu, "\(o.vcpu) vCPU (live)", "\(a.liveVcpu) vCPU", rebuild) }
    if d.isActive && a.liveMemoryKiB != expectedKiB && a.memoryKiB == expectedKiB {
      add(.memory, "\(o.memoryMiB)MiB (live)", "\(a.liveMemoryKiB / 1024)MiB", "virsh -c \(host) setmem \(d.name) \(expectedKiB)")
    }
  }
  if let current = imageDigests[o.image], !current.isEmpty, !o.digest.isEmpty, current != o.digest {
    add(.image, "\(o.image) = \(current.prefix(12))", "node runs \(o.image) built as \(o.digest.prefix(12))", rebuild)
  }
  return f
}

/// Fields where the spec now asks for something other than what was applied.
func specChanges(_ o: NodeOwnership, _ pool: PoolSpec) -> [(expected: String, applied: String)] {
  var c: [(String, String)] = []
  if o.image != pool.image.description { c.append(("image \(pool.image)", "image \(o.image)")) }
  if o.vcpu != pool.resources.vcpu { c.append(("vcpu \(pool.resources.vcpu)", "vcpu \(o.vcpu)")) }
  if o.memoryMiB != pool.resources.memory.mebibytes { c.append(("memory \(pool.resources.memory)", "memory \(o.memoryMiB)MiB")) }
  if o.diskMiB != pool.resources.disk.mebibytes { c.append(("disk \(pool.resources.disk)", "disk \(o.diskMiB)MiB")) }
  if o.network != pool.network { c.append(("network \(pool.network ?? "none")", "network \(o.network ?? "none")")) }
  if o.labels != pool.labels { c.append(("labels \(pool.labels.count)", "labels \(o.labels.count)")) }
  if o.protect != pool.protect { c.append(("protect \(pool.protect)", "protect \(o.protect)")) }
  return c
}
