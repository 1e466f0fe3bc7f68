import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// Options that shape a plan without changing the specs.
public struct PlanOptions: Sendable {
  /// Pools (`web`) or nodes (`web-3`) to limit the plan to; empty means everything.
  public var targets: [String]
  public var excludes: [String]
  /// Resolved digests of image references (`demo@v1` → hex), where known.
  public var imageDigests: [String: String]
  /// Only nodes of this project are Drover's to change here.
  public var project: String
  /// Nodes to replace even though their spec did not change (Terraform's `-replace`): the way
  /// to repair a node edited behind Drover's back.
  public var forceReplace: [String]
  /// Rollouts in progress (from the journal), by pool: their nodes are left to them and the plan
  /// continues them.
  public var activeRollouts: [String: RolloutState]
  /// Delete the nodes of pools no file declares (`--prune`); without it they are kept and shown.
  public var prune: Bool
  /// Set by `rollout resume|abort`: they finish (or roll back) a rollout as its journal says,
  /// whatever the spec asks now; every other plan refuses a spec that changed under a rollout.
  public var resuming: Bool = false
  /// Rollouts this machine's journal has seen end: a node still marked with one of them lost its
  /// mark's removal to a crash, and the plan clears it.
  public var finishedRollouts: Set<String> = []
  /// Whether this machine holds the project key (see `TrustedRecords`).
  public var keyHeld: Bool = false
  /// `--skip-unreachable`: a pool with a host that could not be read is left out whole (a
  /// warning naming the host; its nodes there are unknown) instead of failing the plan. Never a
  /// reason to create, replace or delete anything: the pool gets no action at all.
  public var skipUnreachable: Bool = false
  /// Each host's overcommit ratios (from its entry in drover.yaml), by URI; absent: the defaults.
  public var hostLimits: [String: HostLimits] = [:]
  /// Hosts being drained (`drover host drain`): every node of the project there is moved to
  /// another host of its pool through the rollout engine.
  public var draining: Set<String> = []
  /// Now (epoch seconds): kept nodes whose time has passed are removed (#45).
  public var now: Double = 0
  /// `drover rollout finish`: the plan removes the kept nodes of the pools in scope and does
  /// nothing else.
  public var finishKept = false

  public init(
    targets: [String] = [], excludes: [String] = [], imageDigests: [String: String] = [:], project: String = "default",
    forceReplace: [String] = [], activeRollouts: [String: RolloutState] = [:], prune: Bool = false
  ) {
    self.prune = prune
    self.activeRollouts = activeRollouts
    self.project = project
    self.forceReplace = forceReplace
    self.targets = targets
    self.excludes = excludes
    self.imageDigests = imageDigests
  }
}

/// Computes the changes that make the observed world match the specs.
///
/// Pure: reads nothing but its arguments. Node identity is the pool name plus a stable index
/// (`web-1`, `web-2`, …), never a list position, so reordering YAML changes nothing. Existing
/// nodes are compared field by field with what their metadata records, so an unchanged spec plans
/// zero changes whatever Drover version wrote the node. Returns error diagnostics for anything
/// that must not be applied (a foreign domain in the way, a protected pool losing nodes, an
/// unreachable host); such a plan is shown but never applied or saved.
public func makePlan(pools: [PoolSpec], observed: ObservedWorld, options: PlanOptions = PlanOptions()) -> (Plan, [Diagnostic]) {
  var actions: [PlannedAction] = []
  var diagnostics: [Diagnostic] = []
  let declared = Dictionary(pools.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

  // Every owned node, wherever it is, grouped by pool: only records that verify (see
  // `TrustedRecords`); every other record of the project stops the plan where it stands.
  let records = TrustedRecords(observed, project: options.project, keyHeld: options.keyHeld)
  var owned: [String: [OwnedNode]] = [:]
  // Kept nodes (#45), by pool: never replicas; their own rules below.
  var kept: [String: [OwnedNode]] = [:]
  // The highest generation of every index (domains, refused records and overlays alike), by pool.
  var generations: [String: [Int: Int]] = [:]
  for (uri, d, o) in records.owned {
    if o.kept != nil {
      kept[o.pool, default: []].append((uri, d, o))
    } else {
      owned[o.pool, default: []].append((uri, d, o))
    }
  }
  for o in records.owned.map(\.ownership) + records.refused.map(\.entry.ownership) {
    generations[o.pool, default: [:]][o.index] = max(generations[o.pool]?[o.index] ?? 0, o.generation)
  }
  for (entry, why) in records.refused {
    diagnostics.append(
      .error(
        "plan.record-mismatch",
        "domain \(entry.domain.name) (UUID \(entry.domain.uuid)) on \(entry.host) carries a record of node \(entry.ownership.node) of pool \(entry.ownership.pool), but \(why); Drover will not touch it",
        subject: "node \(entry.ownership.node) on \(entry.host)",
        hint: "if it is a copy, remove it (virsh undefine); to take it over on purpose: drover adopt \(entry.domain.name) --host \(entry.host)"))
  }
  if records.advisory {
    diagnostics.append(
      .warning(
        "records.advisory",
        "this machine has no key for project \(options.project), whose records are sealed with key \(records.foreignKeyID ?? "?"): their binding was checked, their seal could not be; this plan is advisory and apply refuses",
        subject: "project \(options.project)", hint: "import the key: drover key import < key.txt, or set DROVER_PROJECT_KEY (drover key export on a machine that has it)"))
  }
  for (_, host) in observed.hosts {
    for volume in host.overlays {
      guard let name = OverlayName(volume: volume), name.project == options.project else { continue }
      generations[name.pool, default: [:]][name.index] = max(generations[name.pool]?[name.index] ?? 0, name.generation)
    }
  }
  let refusedNames = records.refusedNames
  var rolling = options.activeRollouts.mapValues { Set($0.nodes.values.map(\.index)) }
  // A node marked by a rollout that has not ended (here or on another machine) belongs to it:
  // its index is left alone, so a surge node is never a "duplicate".
  // Every verified node of the project, serving or kept, by pool (rollout marks, undeclared pools).
  let everyNode = kept.isEmpty ? owned : owned.merging(kept, uniquingKeysWith: +)
  for (pool, nodes) in everyNode {
    for n in nodes where n.ownership.rollout.map({ !options.finishedRollouts.contains($0.id) }) == true {
      rolling[pool, default: []].insert(n.ownership.index)
    }
  }

  var unknown: [UnknownNodes] = []
  // Kept nodes a plan removes (by UUID): each once, whichever pool's plan needed it.
  var reclaimed: Set<String> = []
  // One ledger for every pool: they draw on the same hosts.
  var ledger = CapacityLedger(observed: observed, limits: options.hostLimits, project: options.project)
  for pool in pools.sorted(by: { $0.name < $1.name }) {
    if let uri = pool.hosts.first(where: { observed.unreachable[$0] != nil }) {
      let reason = (uri, observed.unreachable[uri] ?? "")
      if options.skipUnreachable {
        let known = (owned[pool.name] ?? []).filter { $0.host != uri }.map(\.ownership.node).sorted()
        for host in pool.hosts where observed.unreachable[host] != nil {
          let there = (0..<max(0, pool.replicas)).map { $0 + 1 }.filter { placement(pool, index: $0) == host }.map { NodeName.of(pool: pool.name, index: $0) }
          unknown.append(UnknownNodes(pool: pool.name, host: host, nodes: there, reason: observed.unreachable[host] ?? "", seen: known))
        }
        diagnostics.append(
          .warning(
            "libvirt.unreachable-skipped",
            "pool \(pool.name) is not planned: host \(reason.0) could not be read (\(reason.1)); its nodes there are unknown, and no node of the pool is created, changed or deleted\(known.isEmpty ? "" : " (seen elsewhere: \(known.joined(separator: ", ")))")",
            subject: "pool \(pool.name)", hint: "plan it once the host answers"))
      } else {
        diagnostics.append(
          .error(
            "libvirt.unreachable", "cannot plan pool \(pool.name): host \(reason.0) could not be read: \(reason.1)",
            subject: "pool \(pool.name)", hint: "check the host; --skip-unreachable plans the other pools, or plan them with --target"))
      }
      continue
    }
    let poolActions = planPoolReclaiming(
      pool, existing: owned[pool.name] ?? [], kept: kept, observed: observed, options: options, generations: generations[pool.name] ?? [:],
      rolling: rolling, refused: refusedNames, ledger: &ledger, diagnostics: &diagnostics, reclaimed: &reclaimed)
    diagnostics += rolloutsElsewhere(pool, owned: owned[pool.name] ?? [], options: options)
    if let active = options.activeRollouts[pool.name], active.toImage != pool.image.description, !options.resuming {
      diagnostics.append(
        .error(
          "plan.rollout-spec-changed",
          "pool \(pool.name) has rollout \(active.id) (\(active.fromImage) → \(active.toImage)) in progress, and the spec now asks \(pool.image.description): images are never mixed",
          subject: "pool \(pool.name)",
          hint: "finish it (drover rollout resume \(pool.name)) or abort it (drover rollout abort \(pool.name)) first; then plan \(pool.image.description)"))
    }
    if let active = options.activeRollouts[pool.name] {
      for a in poolActions where a.kind == .replace {
        diagnostics.append(
          .error(
            "plan.rollout-in-progress",
            "pool \(pool.name) has rollout \(active.id) (\(active.fromImage) → \(active.toImage)) in progress; node \(a.node) would also be replaced (\(a.reason))",
            subject: "pool \(pool.name)",
            hint: "finish it first: drover rollout resume \(pool.name) (or drover rollout abort \(pool.name)), then plan again"))
      }
    }
    actions += poolActions
  }

  // A host no pool names any more, remembered because the project had nodes there, that could
  // not be read: what is left there cannot be planned, and that is never "No changes".
  for (uri, reason) in ProjectHosts.unreadFormerHosts(declared: Set(pools.flatMap(\.hosts)), observed: observed) {
    diagnostics.append(
      Diagnostic(
        options.skipUnreachable ? .warning : .error, code: "libvirt.unreachable-former",
        message: "host \(uri), which no pool names any more but where this project had nodes, could not be read: \(reason)",
        subject: "host \(uri)",
        hint: "its leftover nodes cannot be planned; bring the host back, or if it is gone for good remove its line from .drover/hosts.\(options.project)"))
  }

  // Owned nodes whose pool no file declares: kept and shown, or with --prune deleted; never silent.
  var undeclared: [UndeclaredPool] = []
  for (poolName, nodes) in everyNode.sorted(by: { $0.key < $1.key }) where declared[poolName] == nil {
    // The migration seals every record an older Drover wrote, kept pools' too: a record left
    // unsealed would be refused for good once the project has keyed records.
    let unsealed = nodes.filter { $0.domain.trust == .legacy }
    actions += unsealed.sorted { $0.ownership.index < $1.ownership.index }.map { seal($0, pool: poolName) }
    let nodes = nodes.filter { $0.domain.trust != .legacy }
    if nodes.isEmpty { continue }
    guard options.prune else {
      undeclared.append(UndeclaredPool(pool: poolName, nodes: nodes.map(\.domain.name).sorted(), hosts: Array(Set(nodes.map(\.host))).sorted()))
      continue
    }
    for n in nodes.sorted(by: { $0.ownership.index < $1.ownership.index }) {
      actions.append(
        PlannedAction(
          kind: .delete, pool: poolName, node: n.domain.name, host: n.host,
          reason: "pool \(poolName) is not declared in pools/ (--prune)", uuid: n.domain.uuid, before: n.ownership))
      if n.ownership.protect {
        diagnostics.append(
          .error(
            "plan.protected", "node \(n.domain.name) of protected pool \(poolName) would be destroyed: its pool file was removed",
            subject: "node \(n.domain.name) on \(n.host)",
            hint: "restore pools/\(poolName).yaml, or set protect: false and apply before removing it"))
      }
    }
  }
  // A rollout in progress may still create (or re-create after a crash) its nodes' next
  // generation and their rollback's; every other overlay without a domain is an orphan. A
  // rollout rolling back never makes its next generation again: a replacement whose removal was
  // cut short after its domain went (its overlay left behind) is an orphan then.
  let reserved = options.activeRollouts.mapValues { state in
    let rollingBack = state.status == .rollingBack
    return Set(state.nodes.values.flatMap { n in (rollingBack ? [] : ["\(n.index).\(n.to.generation)"]) + ["\(n.index).\(n.to.generation + 1)"] })
  }
  actions += orphanedOverlays(observed, project: options.project, reserved: reserved)

  let (accelerated, acceleration, accelerators, accelProblems) = chooseAcceleration(actions, pools: declared, observed: observed)
  actions = accelerated
  diagnostics += accelProblems

  let selector = TargetSelector(pools: pools, owned: owned.values.flatMap { $0.map { ($0.ownership.pool, $0.domain.name, $0.ownership.index) } })
  diagnostics += selector.unknown(options.targets, option: "target") + selector.unknown(options.excludes, option: "exclude")
    + selector.unknown(options.forceReplace, option: "replace", nodesOnly: true)
  actions = actions.filter { selected($0, targets: options.targets, excludes: options.excludes) }
  let relevant = Set(pools.flatMap(\.hosts)).union(owned.values.flatMap { $0.map(\.host) })
  let basePlan = Plan(
    actions: actions, specDigest: specDigest(pools), world: WorldFingerprint(
      observed, relevantHosts: relevant, project: options.project, pools: Set(pools.map(\.name)).union(owned.keys)),
    targets: options.targets, excludes: options.excludes, forceReplace: options.forceReplace)
  var plan = basePlan
  plan.project = options.project
  plan.prune = options.prune
  plan.programs = Dictionary(
    uniqueKeysWithValues: pools.filter { pool in actions.contains { $0.pool == pool.name } }.map { ($0.name, PoolPrograms.list($0)) }.filter { !$0.1.isEmpty })
  plan.undeclared = undeclared.filter { selected(pool: $0.pool, targets: options.targets, excludes: options.excludes) }
  plan.accelerators = accelerators
  plan.acceleration = acceleration.filter { host, _ in actions.contains { $0.host == host && $0.after != nil } }
  plan.unknown = unknown.filter { selected(pool: $0.pool, targets: options.targets, excludes: options.excludes) }
  let keptLeft = keptEntries(kept, deleted: Set(actions.filter { $0.kind == .delete }.compactMap(\.uuid)))
    .filter { selected(pool: $0.pool, targets: options.targets, excludes: options.excludes) }
  plan.kept = keptLeft.isEmpty ? nil : keptLeft
  plan.rollouts = options.finishKept ? [] : pools.sorted { $0.name < $1.name }.compactMap { pool in
    if let active = options.activeRollouts[pool.name] {
      guard selected(pool: pool.name, targets: options.targets, excludes: options.excludes) else { return nil }
      // Resumed only as far as the verified records and the spec allow, never from the journal alone.
      diagnostics += resumeProblems(active, pool: pool, owned: owned[pool.name] ?? [])
      return RolloutPreview.resuming(active, pool: pool)
    }
    return RolloutPreview.make(pool: pool, actions: actions)
  }
  plan.images = planImages(pools: pools, rollouts: plan.rollouts, options: options)
  // With --target/--exclude, problems of pools outside the slice are left out; those of pools in
  // it (an unreachable host among them) always stay.
  let inScope = Set(pools.map(\.name) + owned.keys).filter { selected(pool: $0, targets: options.targets, excludes: options.excludes) }
  let retained = diagnostics.filter { d in
    // What an unread former host holds is unknown, so no --target/--exclude can leave it out.
    guard let subject = d.subject, d.code != "plan.target", d.code != "libvirt.unreachable-former" else { return true }
    return options.targets.isEmpty && options.excludes.isEmpty || inScope.contains { subject.contains($0) }
      || actions.contains { subject.contains($0.pool) }
  }
  return (plan, retained)
}

/// Each image the selected pools and their rollouts (rollback targets included) use, with the
/// digest it resolves to now ("" when unknown): what a saved plan must still find when applied.
func planImages(pools: [PoolSpec], rollouts: [RolloutPreview], options: PlanOptions) -> [String: String] {
  let references = pools.filter { selected(pool: $0.name, targets: options.targets, excludes: options.excludes) }.map(\.image.description)
    + rollouts.flatMap { $0.fromImage.split(separator: ",").map(String.init) + [$0.toImage] }
  return Dictionary(references.map { ($0, options.imageDigests[$0] ?? "") }, uniquingKeysWith: { a, _ in a })
}

/// Rollouts in progress that this machine's journal does not run, seen in the marks of the pool's
/// records (a rollout run from another machine or checkout): their nodes are not this plan's,
/// and the journal and the records disagree, so the plan stops and says whose it is.
func rolloutsElsewhere(_ pool: PoolSpec, owned: [OwnedNode], options: PlanOptions) -> [Diagnostic] {
  let local = options.activeRollouts[pool.name]?.id
  let marked = Dictionary(grouping: owned.compactMap { n in n.ownership.rollout.map { ($0, n) } }, by: { $0.0.id })
  var problems: [Diagnostic] = []
  // The journal here says nodes were replaced, yet no node carries its rollout's mark: the journal
  // is not this world's (copied from elsewhere, or the nodes were changed behind it).
  // (A rollout with nothing left to do cleared its marks and was killed before journaling the end.)
  if let active = options.activeRollouts[pool.name], !active.undone, marked[active.id] == nil, nextRolloutStep(active) != .done {
    let replaced = active.done.subtracting(active.rolledBack).sorted()
    if !replaced.isEmpty {
      problems.append(
        .error(
          "plan.rollout-journal-mismatch",
          "the journal here says rollout \(active.id) of pool \(pool.name) replaced \(replaced.joined(separator: ", ")), but no node carries its mark: the journal and the hosts disagree",
          subject: "pool \(pool.name)",
          hint: "if this journal came from another machine or is stale, move <state>/journal/\(pool.name).jsonl away and plan again; Drover will not guess"))
    }
  }
  return problems + marked.keys.sorted().compactMap { id -> Diagnostic? in
    guard id != local, !options.finishedRollouts.contains(id), let nodes = marked[id], let mark = nodes.first?.0 else { return nil }
    let done = nodes.filter { $0.1.ownership.image == mark.toImage && $0.0.phase != "rollback" }.count
    return .error(
      "plan.rollout-elsewhere",
      "rollout \(id) of pool \(pool.name) is in progress (\(mark.fromImage) → \(mark.toImage), \(done) of \(mark.total) done, by \(mark.by)); this machine's journal does not run it, so its nodes are left alone",
      subject: "pool \(pool.name)",
      hint: local == nil
        ? "wait for it, or finish it where it runs (drover rollout resume \(pool.name) there); plan other pools with --exclude \(pool.name)"
        : "the journal here runs rollout \(local ?? "") while the records carry \(id): resolve it on the machine that runs \(id) first")
  }
}

/// Overlays of this project that no domain on their host uses: left by a crash between creating
/// an overlay and defining its domain, or between undefining a domain and deleting its disk.
/// Generations an in-progress rollout may still use (`reserved`, by pool: "index.generation") are
/// left to it: its resumed step re-creates that overlay.
func orphanedOverlays(_ observed: ObservedWorld, project: String, reserved: [String: Set<String>]) -> [PlannedAction] {
  var actions: [PlannedAction] = []
  for (uri, host) in observed.hosts.sorted(by: { $0.key < $1.key }) {
    // The volume names (a path's last part) of every disk a domain uses or records: no
    // intermediate arrays, one pass (this ran once per node of every plan).
    var used: Set<Substring> = []
    used.reserveCapacity(host.domains.count)
    func use(_ disk: String) {
      guard !disk.isEmpty else { return }
      // As `split(separator: "/").last`: trailing slashes do not count.
      var path = disk[...]
      while path.last == "/" { path = path.dropLast() }
      used.insert(path.lastIndex(of: "/").map { path[path.index(after: $0)...] } ?? path)
    }
    for d in host.domains {
      for disk in d.actual?.disks ?? [] { use(disk) }
      if let recorded = d.ownership?.disk { use(recorded) }
    }
    for volume in host.overlays where !used.contains(volume[...]) {
      guard let name = OverlayName(volume: volume), name.project == project,
        !(reserved[name.pool]?.contains("\(name.index).\(name.generation)") ?? false)
      else { continue }
      actions.append(
        PlannedAction(
          kind: .removeOverlay, pool: name.pool, node: volume, host: uri,
          reason: "\(name.kind == .seed ? "cloud-init seed" : "overlay") of \(NodeName.of(pool: name.pool, index: name.index)) (generation \(name.generation)) that no domain uses"))
    }
  }
  return actions
}

func selected(pool: String, targets: [String], excludes: [String]) -> Bool {
  if excludes.contains(pool) { return false }
  return targets.isEmpty || targets.contains { poolOfSelector($0, pools: [pool]) == pool }
}

/// A digest of the specs as values (key order and comments in YAML do not matter).
public func specDigest(_ pools: [PoolSpec]) -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys]
  let data = (try? encoder.encode(pools.sorted { $0.name < $1.name })) ?? Data()
  return ContentDigest.of(data).hex
}

/// What a node of `pool` at `index` should record.
public func desiredOwnership(_ pool: PoolSpec, index: Int, digest: String, generation: Int, project: String) -> NodeOwnership {
  DesiredRecord(pool, digest: digest, project: project).node(index: index, generation: generation)
}

/// The part of a node's desired record that is the same for every node of a pool (its spec hash,
/// hooks and seed digests: three SHA-256s and a sorted label list), worked out once per pool
/// and image digest: `plan` asks for it once per node, and per node it was a fifth of the
/// planner's time at 1,000 nodes.
struct DesiredRecord {
  let pool: PoolSpec
  let template: NodeOwnership

  init(_ pool: PoolSpec, digest: String, project: String) {
    var shape = "\(pool.image)|\(digest)|\(pool.resources.vcpu)|\(pool.resources.memory.bytes)|\(pool.resources.disk.bytes)|"
      + "\(pool.network ?? "")|\(pool.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))"
    let seed = CloudInitSeed.digest(pool)
    // Only a seeded pool's hash covers its seed: nodes of other pools keep theirs.
    if let seed { shape += "|seed:\(seed)" }
    var o = NodeOwnership(
      project: project, pool: pool.name, node: "", index: 0, image: pool.image.description, digest: digest,
      specHash: String(ContentDigest.of(shape).hex.prefix(16)), generation: 0, vcpu: pool.resources.vcpu,
      memoryMiB: pool.resources.memory.mebibytes, diskMiB: pool.resources.disk.mebibytes, network: pool.network,
      labels: pool.labels, protect: pool.protect, replicas: pool.replicas)
    o.hooks = PoolPrograms.digest(pool)
    o.seed = seed
    self.pool = pool
    self.template = o
  }

  /// The record of the node at `index`, generation `generation`.
  func node(index: Int, generation: Int) -> NodeOwnership {
    var o = template
    o.node = NodeName.of(pool: pool.name, index: index)
    o.index = index
    o.generation = generation
    o.address = pool.staticAddresses?.address(index: index, generation: generation)
    return o
  }
}
