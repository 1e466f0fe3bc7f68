import DroverBasics
import DroverModel
import DroverRollout

typealias OwnedNode = (host: String, domain: ObservedDomain, ownership: NodeOwnership)

/// Plans one declared pool against its owned nodes.
///
/// - Parameters:
///   - generations: the highest generation seen for each index (domains and overlays), so a new
///     domain's overlay name is never one a crash left behind.
///   - rolling: indexes an in-progress rollout owns; they are left to it.
///   - refused: domains (`host NUL name`) whose record of this project is never acted on; they
///     are reported already and keep their name taken.
func planPool(
  _ pool: PoolSpec, existing: [OwnedNode], kept: [OwnedNode] = [], observed: ObservedWorld, options: PlanOptions, generations: [Int: Int],
  rolling: Set<Int>, refused: Set<String> = [], ledger: inout CapacityLedger, diagnostics: inout [Diagnostic]
) -> [PlannedAction] {
  // `drover rollout finish`: the pool's kept nodes go, nothing else changes.
  if options.finishKept { return keptDeletes(kept, pool: pool, options: options, rolling: rolling, replacing: false) }
  // Kept nodes whose time is up go first, and their room with them.
  var goneKept = keptDeletes(kept, pool: pool, options: options, rolling: rolling, replacing: false)
  for a in goneKept where a.before?.kept?.reserves == true {
    if let b = a.before { ledger.release(Demand(b).cpuAndMemory, on: a.host) }
  }
  // The names kept nodes hold: a new node of their index takes its other name.
  let keptNames = Set(kept.map(\.domain.name))
  var actions: [PlannedAction] = []
  let digest = options.imageDigests[pool.image.description] ?? ""
  func nextGeneration(_ index: Int) -> Int { (generations[index] ?? 0) + 1 }
  // The pool's records, worked out once per image digest (a node whose image has no digest here
  // keeps its own).
  var records: [String: DesiredRecord] = [:]
  func desired(_ digest: String) -> DesiredRecord {
    if let known = records[digest] { return known }
    let made = DesiredRecord(pool, digest: digest, project: options.project)
    records[digest] = made
    return made
  }
  // One node per index; extra copies (e.g. the same node on two hosts) are deleted.
  var byIndex: [Int: OwnedNode] = [:]
  for n in existing.sorted(by: { ($0.ownership.index, $0.host) < ($1.ownership.index, $1.host) }) where !rolling.contains(n.ownership.index) {
    let keep = byIndex[n.ownership.index].map { current in
      // Prefer a copy on a host the pool still lists.
      !pool.hosts.contains(current.host) && pool.hosts.contains(n.host)
    } ?? true
    // The same domain (name and UUID) seen through two URIs is one daemon under two spellings,
    // not a duplicate: deleting "the copy" would delete the node itself.
    if let other = byIndex[n.ownership.index], other.domain.uuid == n.domain.uuid, other.domain.name == n.domain.name {
      diagnostics.append(
        .error(
          "plan.same-host-twice",
          "node \(n.domain.name) (UUID \(n.domain.uuid)) is seen on both \(other.host) and \(n.host): they look like one libvirt daemon under two URIs",
          subject: "pool \(pool.name)", hint: "name each host by one URI only, in the pool files and in .drover/hosts.<project>"))
      continue
    }
    if keep {
      if let dropped = byIndex[n.ownership.index] {
        actions.append(duplicateDelete(dropped, pool: pool))
      }
      byIndex[n.ownership.index] = n
    } else {
      actions.append(duplicateDelete(n, pool: pool))
    }
  }

  // Where the pool's nodes are now (one per index), so new ones spread.
  var nodesOnHost: [String: Int] = [:]
  var indexesOnHost: [String: Set<Int>] = [:]
  for n in existing { indexesOnHost[n.host, default: []].insert(n.ownership.index) }
  for (host, indexes) in indexesOnHost { nodesOnHost[host] = indexes.count }
  /// A host for a new domain of `o`'s shape (a new node, or a replacement that must leave its
  /// host), reserved in the ledger; nil after a located error when none has room.
  func place(_ o: NodeOwnership, avoid: Set<String>, why: String) -> String? {
    let demand = Demand(o)
    switch chooseHost(
      pool: pool, index: o.index, demand: demand, nodesOnHost: nodesOnHost, ledger: ledger, draining: options.draining, avoid: avoid)
    {
    case .success(let host):
      ledger.reserve(demand, on: host)
      nodesOnHost[host, default: 0] += 1
      return host
    case .failure(let refusal):
      diagnostics.append(
        .error(
          "plan.capacity",
          "node \(o.node) (\(why); \(o.vcpu) vCPU, \(o.memoryMiB) MiB memory, \(o.diskMiB) MiB disk) cannot be placed: \(refusal.description)",
          subject: "pool \(pool.name)",
          hint: "free room on a host, raise its entry's max_vcpu_ratio/max_memory_ratio/max_disk_ratio in drover.yaml, add a host to the pool, uncordon one, or lower the pool's resources"))
      return nil
    }
  }

  for index in 1...max(1, pool.replicas) where index <= pool.replicas && !rolling.contains(index) {
    let name = NodeName.of(pool: pool.name, index: index)
    guard let current = byIndex[index] else {
      var wanted = desired(digest).node(index: index, generation: nextGeneration(index))
      let name = keptNames.contains(name) ? replacementName(key: name, generation: wanted.generation, occupied: keptNames) : name
      wanted.node = name
      guard let host = place(wanted, avoid: [], why: byIndex.isEmpty && existing.isEmpty ? "new" : "missing") else { continue }
      if refused.contains(TrustedRecords.nameKey(host: host, name: name)) { continue }
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
      let after = NodeDefinition(ownership: wanted)
      actions.append(
        PlannedAction(
          kind: .create, pool: pool.name, node: name, host: host,
          reason: byIndex.isEmpty && existing.isEmpty ? "new node" : "missing node (replicas: \(pool.replicas))", after: after))
      continue
    }
    if current.domain.trust == .legacy {
      actions.append(seal(current, pool: pool.name))
      continue
    }
    let standing = hostStanding(current.host, pool: pool, draining: options.draining, ledger: ledger)
    let changes = compare(
      current, with: pool, digest: digest, project: options.project, nextGeneration: nextGeneration(index),
      forceReplace: options.forceReplace.contains(name) || options.forceReplace.contains(current.domain.name), standing: standing,
      desired: desired
    ) { o, why in place(o, avoid: [current.host], why: why) }
    for a in changes where a.kind == .update && a.restart {
      // A resize restarts the node on its host: its growth must fit there.
      guard let before = a.before, let after = a.after?.ownership else { continue }
      let growth = Demand.growth(from: Demand(before), to: Demand(after))
      if let why = ledger.shortfall(Demand(vcpu: growth.vcpu, memory: growth.memory), on: a.host) {
        diagnostics.append(
          .error(
            "plan.capacity", "node \(a.node) of pool \(pool.name) cannot grow on \(a.host) (\(a.reason)): the host is \(why)",
            subject: "node \(a.node) on \(a.host)", hint: "free room on the host, raise its entry's ratios in drover.yaml, or keep the node's size"))
      } else {
        ledger.reserve(Demand(vcpu: growth.vcpu, memory: growth.memory), on: a.host)
      }
    }
    actions += changes
  }

  // Replacements that stay on their host: at the rollout's peak (a surge batch beside the old
  // nodes) they must fit there too.
  let replacements = actions.filter { $0.kind == .replace }
  if !replacements.isEmpty {
    let policy = RolloutPolicy.resolve(pool.upgrade, budget: pool.errorBudget, nodes: replacements.count, replicas: pool.replicas)
    for (host, staying) in Dictionary(grouping: replacements.filter { $0.destination == nil }, by: \.host).sorted(by: { $0.key < $1.key }) {
      let pairs = staying.compactMap { a in a.before.flatMap { b in a.after.map { (old: Demand(b), new: Demand($0.ownership)) } } }
      let peak = replacementPeak(pairs, concurrency: policy.concurrency, surge: policy.usesSurge)
      if let why = ledger.shortfall(peak, on: host) {
        let mode = policy.usesSurge ? "with max_surge \(policy.maxSurge), \(min(policy.concurrency, pairs.count)) new node(s) run beside the old ones" : "in place"
        diagnostics.append(
          .error(
            "plan.capacity",
            "replacing \(staying.map(\.node).sorted().joined(separator: ", ")) of pool \(pool.name) on \(host) does not fit (\(mode)): the host is \(why)",
            subject: "pool \(pool.name) on \(host)",
            hint: policy.usesSurge
              ? "lower upgrade.max_surge (0 replaces in place, one node down at a time), free room on the host, or raise its entry's ratios in drover.yaml"
              : "free room on the host, raise its entry's ratios in drover.yaml, or keep the pool's resources"))
      } else {
        ledger.reserve(peak, on: host)
      }
    }
  }

  // Scale down: highest index first.
  for (index, n) in byIndex.sorted(by: { $0.key > $1.key }) where index > pool.replicas {
    if n.domain.trust == .legacy {
      actions.append(seal(n, pool: pool.name))
      continue
    }
    actions.append(
      PlannedAction(
        kind: .delete, pool: pool.name, node: n.domain.name, host: n.host,
        reason: "scale down to \(pool.replicas) replica\(pool.replicas == 1 ? "" : "s") (index \(index) > \(pool.replicas))",
        uuid: n.domain.uuid, before: n.ownership))
  }

  // A new rollout of the pool never runs beside the previous one's kept nodes.
  if actions.contains(where: { $0.kind == .replace }) {
    let gone = Set(goneKept.compactMap(\.uuid))
    goneKept += keptDeletes(kept.filter { !gone.contains($0.domain.uuid) }, pool: pool, options: options, rolling: rolling, replacing: true)
  }
  actions = goneKept + actions

  // Protection comes from the spec and from the node's record; the stricter wins, so a pull
  // request that sets protect: false and removes nodes at once cannot destroy them.
  for a in actions where a.kind == .delete || a.kind == .replace {
    let verb = a.kind == .delete ? "destroy" : "replace"
    if pool.protect {
      diagnostics.append(
        .error(
          "plan.protected", "pool \(pool.name) is protected: the plan would \(verb) node \(a.node) (\(a.reason))",
          subject: "node \(a.node) on \(a.host)", hint: "set protect: false in the pool to allow it"))
    } else if a.before?.protect == true {
      diagnostics.append(
        .error(
          "plan.protected",
          "node \(a.node) records protect: true, so the plan may not \(verb) it (\(a.reason)); the stricter of the spec and the record wins",
          subject: "node \(a.node) on \(a.host)",
          hint: "unprotecting takes two applies: apply protect: false with no other change to the pool first (it rewrites the records), then this change"))
    }
  }
  return actions
}

/// The one action for a node whose record an older Drover wrote: seal it with the project key,
/// values unchanged (its name and UUID are checked again when it runs). Everything else the spec
/// asks waits for the next plan, when the record is trusted.
func seal(_ n: OwnedNode, pool: String) -> PlannedAction {
  PlannedAction(
    kind: .update, pool: pool, node: n.domain.name, host: n.host,
    reason: "record written by an older Drover: sealed with the project key (in place; other changes wait for the next plan)",
    uuid: n.domain.uuid, before: n.ownership, after: NodeDefinition(ownership: n.ownership))
}

/// Whether a node may stay on its host: fine; it must leave (the host left `hosts:` or is being
/// drained); or it may stay but no new domain goes there (cordoned), so a replacement moves.
enum HostStanding: Sendable, Hashable {
  case fine
  case leave(String)
  case noNewNodes(String)
}

func hostStanding(_ host: String, pool: PoolSpec, draining: Set<String>, ledger: CapacityLedger) -> HostStanding {
  if !pool.hosts.contains(host) { return .leave("host \(host) is no longer in hosts") }
  if draining.contains(host) { return .leave("host \(host) is being drained") }
  if ledger.isCordoned(host) { return .noNewNodes("host \(host) is cordoned") }
  return .fine
}

/// The round-robin host of a node index, which placement prefers when hosts tie (see
/// `chooseHost`), and where a node missing from an unreadable host is shown. The one placement rule, shared by
/// the planner and the rollout (a replacement stays on its node's host).
public func placement(_ pool: PoolSpec, index: Int) -> String {
  pool.hosts[(index - 1) % pool.hosts.count]
}

func duplicateDelete(_ n: OwnedNode, pool: PoolSpec) -> PlannedAction {
  PlannedAction(
    kind: .delete, pool: pool.name, node: n.domain.name, host: n.host,
    reason: "duplicate of node \(n.domain.name) on another host", uuid: n.domain.uuid, before: n.ownership)
}

/// Compares an existing node with its spec and with its own real config: replace, update, start,
/// or nothing.
///
/// Day-2 semantics: labels and protection change in place (no restart, same disk); vCPU and memory
/// restart the node on the same disk with the same generation; image, disk size, network, a disk
/// or NIC swapped outside Drover, `--replace`, and a node that failed its health check at
/// creation are replacements (a new domain, a new overlay, the next generation) run by the rollout
/// engine.
func compare(
  _ n: OwnedNode, with pool: PoolSpec, digest: String, project: String, nextGeneration: Int, forceReplace: Bool = false,
  standing: HostStanding = .fine, desired: ((String) -> DesiredRecord)? = nil, place: (NodeOwnership, String) -> String? = { _, _ in nil }
) -> [PlannedAction] {
  let o = n.ownership
  let desiredDigest = digest.isEmpty ? o.digest : digest
  let record = desired?(desiredDigest) ?? DesiredRecord(pool, digest: desiredDigest, project: project)
  var replacement = record.node(index: o.index, generation: nextGeneration)
  // Beside the node it replaces (surge), never at its address.
  if let addressing = pool.staticAddresses { replacement.address = addressing.address(index: o.index, replacing: o.address) }

  let outside = outsideChanges(o, actual: n.domain.actual)
  var replaceReasons: [String] = []
  if o.image != replacement.image {
    replaceReasons.append("image \(o.image) → \(replacement.image)")
  } else if !digest.isEmpty && !o.digest.isEmpty && o.digest != digest {
    replaceReasons.append("image \(o.image) was rebuilt (digest \(o.digest.prefix(12)) → \(digest.prefix(12)))")
  }
  if o.diskMiB != replacement.diskMiB { replaceReasons.append("disk \(o.diskMiB)MiB → \(replacement.diskMiB)MiB (a new disk)") }
  if o.network != replacement.network {
    replaceReasons.append("network \(o.network ?? "none") → \(replacement.network ?? "none")")
  }
  if o.seed != replacement.seed {
    // cloud-init reads a seed once per instance: a new one needs a new node.
    replaceReasons.append(o.seed == nil ? "it needs a cloud-init seed" : replacement.seed == nil ? "its cloud-init seed is no longer wanted" : "its cloud-init seed changed (keys, user-data, addresses or Drover's part)")
  }
  let swapped = outside.filter(\.needsReplacement)
  if !swapped.isEmpty { replaceReasons.append("changed outside Drover: " + swapped.map(\.description).joined(separator: ", ")) }
  if o.healthFailed { replaceReasons.append("failed its health check at creation") }
  if forceReplace { replaceReasons.append("replacement requested with --replace") }
  // A node whose host left `hosts:` or is drained moves; a replacement never lands on a cordoned host.
  var mustMove: String?
  switch standing {
  case .fine: break
  case .leave(let why):
    mustMove = why
    replaceReasons.insert(why, at: 0)
  case .noNewNodes(let why): if !replaceReasons.isEmpty { mustMove = why }
  }
  if !replaceReasons.isEmpty {
    var after = replacement
    after.node = o.node
    var action = PlannedAction(
      kind: .replace, pool: pool.name, node: n.domain.name, host: n.host, reason: replaceReasons.joined(separator: "; "),
      uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after))
    if let why = mustMove {
      // Moved through the rollout engine: the new node on another host first, then the old one goes.
      guard let destination = place(after, why) else { return [] }
      action.destination = destination
      action.reason += " (moves to \(destination))"
    }
    return [action]
  }

  // Same domain from here on: same name, disk, image build and generation.
  var after = replacement
  after.node = o.node
  after.generation = o.generation
  after.digest = o.digest
  after.disk = o.disk
  // The same machine keeps the address its seed gave it (a different addressing is a replacement).
  after.address = o.address
  var actions: [PlannedAction] = []
  var resize: [String] = []
  if o.vcpu != after.vcpu { resize.append("vcpu \(o.vcpu) → \(after.vcpu)") }
  if o.memoryMiB != after.memoryMiB { resize.append("memory \(o.memoryMiB)MiB → \(after.memoryMiB)MiB") }
  let drifted = outside.filter { !$0.needsReplacement }
  if !drifted.isEmpty && resize.isEmpty {
    resize.append("changed outside Drover: " + drifted.map(\.description).joined(separator: ", "))
  }
  var metadataOnly: [String] = []
  if o.labels != after.labels { metadataOnly.append("labels") }
  if o.protect != after.protect { metadataOnly.append("protect \(o.protect) → \(after.protect)") }
  if let mark = o.rollout { metadataOnly.append("clears the mark of finished rollout \(mark.id)") }
  if !o.hooks.isEmpty && o.hooks != after.hooks {
    metadataOnly.append("the programs this pool runs on this machine changed (drain hooks or command health checks; see the list below)")
  }
  if !resize.isEmpty {
    actions.append(
      PlannedAction(
        kind: .update, pool: pool.name, node: n.domain.name, host: n.host,
        reason: (resize + metadataOnly).joined(separator: ", ") + (n.domain.isActive ? " (restarts the node, same disk)" : " (same disk)"),
        uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after), restart: true))
  } else if !metadataOnly.isEmpty {
    actions.append(
      PlannedAction(
        kind: .update, pool: pool.name, node: n.domain.name, host: n.host, reason: metadataOnly.joined(separator: ", ") + " (in place)",
        uuid: n.domain.uuid, before: o, after: NodeDefinition(ownership: after)))
  }
  if !n.domain.isActive {
    actions.append(
      PlannedAction(
        kind: .start, pool: pool.name, node: n.domain.name, host: n.host, reason: "node is \(n.domain.state)", uuid: n.domain.uuid,
        before: o, after: NodeDefinition(ownership: after)))
  }
  return actions
}
