import DroverModel

/// What a new or changed node asks of a host: vCPUs, memory bytes and pool bytes (its overlay's
/// full size: copy-on-write overlays start small but may grow to it).
public struct Demand: Sendable, Hashable {
  public var vcpu: Int
  public var memory: Int
  public var disk: Int

  public init(vcpu: Int = 0, memory: Int = 0, disk: Int = 0) {
    self.vcpu = vcpu
    self.memory = memory
    self.disk = disk
  }

  /// A node of `o`'s shape, whole.
  public init(_ o: NodeOwnership) {
    // Records come from domains anyone with libvirt access can edit: bounded, never an overflow.
    self.init(
      vcpu: min(max(0, o.vcpu), Demand.maxVcpu), memory: Int(clamping: min(o.memoryMiB, Demand.maxMiB)) * 1_048_576,
      disk: Int(clamping: min(o.diskMiB, Demand.maxMiB)) * 1_048_576)
  }

  /// Bounds on one domain's figures (16 TiB, 1 Mi vCPUs): sums of many stay far from overflow.
  static let maxMiB: UInt64 = 1 << 24
  static let maxVcpu = 1 << 20

  public var isEmpty: Bool { vcpu <= 0 && memory <= 0 && disk <= 0 }

  public static func + (a: Demand, b: Demand) -> Demand { Demand(vcpu: a.vcpu + b.vcpu, memory: a.memory + b.memory, disk: a.disk + b.disk) }
  public static func * (n: Int, d: Demand) -> Demand { Demand(vcpu: n * d.vcpu, memory: n * d.memory, disk: n * d.disk) }
  /// What growing from `old` to `new` adds (never negative: a smaller node frees nothing until it runs).
  public static func growth(from old: Demand, to new: Demand) -> Demand {
    Demand(vcpu: max(0, new.vcpu - old.vcpu), memory: max(0, new.memory - old.memory), disk: max(0, new.disk - old.disk))
  }
  /// Per field, the smaller.
  public static func least(_ a: Demand, _ b: Demand) -> Demand {
    Demand(vcpu: min(a.vcpu, b.vcpu), memory: min(a.memory, b.memory), disk: min(a.disk, b.disk))
  }
}

/// One host's room for new nodes: what it has (read), what its entry allows, what its domains are
/// given now and what this plan has placed there so far.
public struct HostRoom: Sendable, Hashable {
  public var uri: String
  public var capacity: HostCapacity?
  public var limits: HostLimits
  public var cordoned: Bool
  /// vCPUs and memory given to the host's running domains and to every node of the project
  /// there (a stopped node of Drover's may be started by the plan).
  public var committed: Demand
  /// What this plan has placed here so far.
  public var planned = Demand()

  public init(uri: String, capacity: HostCapacity?, limits: HostLimits, cordoned: Bool, committed: Demand) {
    self.uri = uri
    self.capacity = capacity
    self.limits = limits
    self.cordoned = cordoned
    self.committed = committed
  }

  /// Whether capacity binds here: read, and not a test driver's made-up figures (unless the host
  /// entry sets ratios on purpose).
  public var enforced: Bool { capacity.map { !$0.simulated || limits.isSet } ?? false }

  /// Why `demand` does not fit on top of what is planned here already, or nil when it does.
  public func shortfall(_ demand: Demand) -> String? {
    guard enforced, let c = capacity else { return nil }
    var short: [String] = []
    let want = planned + demand
    if demand.vcpu > 0 {
      let allowed = Int((Double(c.cpus) * limits.vcpuRatio).rounded(.down))
      if committed.vcpu + want.vcpu > allowed {
        short.append(
          "\(committed.vcpu + want.vcpu - allowed) vCPU (\(c.cpus) CPUs × \(Self.ratio(limits.vcpuRatio)) allow \(allowed); its domains have \(committed.vcpu)\(planned.vcpu > 0 ? ", this plan adds \(planned.vcpu) before" : ""), the node needs \(demand.vcpu))")
      }
    }
    if demand.memory > 0 {
      let allowed = Int((Double(c.memoryBytes) * limits.memoryRatio).rounded(.down))
      if committed.memory + want.memory > allowed {
        short.append(
          "\(Self.bytes(committed.memory + want.memory - allowed)) of memory (\(Self.bytes(Int(c.memoryBytes))) × \(Self.ratio(limits.memoryRatio)) allow \(Self.bytes(allowed)); its domains are given \(Self.bytes(committed.memory))\(planned.memory > 0 ? ", this plan adds \(Self.bytes(planned.memory)) before" : ""), the node needs \(Self.bytes(demand.memory)))")
      } else if limits.memoryRatio <= 1, let available = c.availableMemoryBytes, want.memory > Int(available) {
        // Not overcommitted: never more than the kernel can give now.
        short.append("\(Self.bytes(want.memory - Int(available))) of memory available now (\(Self.bytes(Int(available))) free, this plan needs \(Self.bytes(want.memory)) there)")
      }
    }
    if demand.disk > 0, let free = c.poolFreeBytes {
      let allowed = Int((Double(free) * limits.diskRatio).rounded(.down))
      if want.disk > allowed {
        short.append(
          "\(Self.bytes(want.disk - allowed)) of disk in Drover's image pool (\(Self.bytes(Int(free))) free × \(Self.ratio(limits.diskRatio)) allow \(Self.bytes(allowed)); this plan needs \(Self.bytes(want.disk)) there)")
      }
    }
    return short.isEmpty ? nil : "short of " + short.joined(separator: " and ")
  }

  static func ratio(_ r: Double) -> String { r == r.rounded() ? String(Int(r)) + ".0" : String(r) }
  static func bytes(_ n: Int) -> String { HostRoomText.bytes(n) }
}

/// How capacity figures are written for people.
public enum HostRoomText {
  /// Bytes: MiB below 10 GiB, else GiB with one decimal.
  public static func bytes(_ n: Int) -> String {
    let mib = Double(n) / 1_048_576
    if mib < 10 * 1024 { return "\(Int(mib.rounded(.up))) MiB" }
    return "\(Double(Int((mib / 1024 * 10).rounded())) / 10) GiB"
  }
}

/// Every host's room, shared by all pools of a plan (they draw on the same hosts).
public struct CapacityLedger: Sendable, Hashable {
  public var rooms: [String: HostRoom]

  public init(rooms: [String: HostRoom]) { self.rooms = rooms }

  /// From what was read: each host's capacity, cordon and what its domains are given.
  public init(observed: ObservedWorld, limits: [String: HostLimits], project: String) {
    var rooms: [String: HostRoom] = [:]
    for (uri, host) in observed.hosts {
      var committed = Demand()
      for d in host.domains {
        guard let shape = d.actual, d.isActive || d.ownership?.project == project else { continue }
        // A kept node that gave up its room (`capacity: disk-only`) holds only its disk.
        if !d.isActive, d.ownership?.kept?.reserves == false { continue }
        committed.vcpu += min(Demand.maxVcpu, max(0, shape.vcpu, d.isActive ? shape.liveVcpu : 0))
        committed.memory += Int(min(Demand.maxMiB * 1024, max(shape.memoryKiB, d.isActive ? shape.liveMemoryKiB : 0))) * 1024
      }
      rooms[uri] = HostRoom(
        uri: uri, capacity: host.capacity, limits: limits[uri] ?? HostLimits(), cordoned: HostCordon.isCordoned(host), committed: committed)
    }
    self.rooms = rooms
  }

  public func isCordoned(_ uri: String) -> Bool { rooms[uri]?.cordoned ?? false }

  public func shortfall(_ demand: Demand, on uri: String) -> String? { rooms[uri]?.shortfall(demand) }

  public mutating func reserve(_ demand: Demand, on uri: String) {
    guard var room = rooms[uri] else { return }
    room.planned = room.planned + demand
    rooms[uri] = room
  }
}

/// Why no host of a pool can take a node: each candidate host with its reason.
public struct PlacementRefusal: Error, Sendable, Hashable {
  public var reasons: [(host: String, why: String)]

  public static func == (a: PlacementRefusal, b: PlacementRefusal) -> Bool { a.reasons.map { "\($0.host)|\($0.why)" } == b.reasons.map { "\($0.host)|\($0.why)" } }
  public func hash(into h: inout Hasher) { for r in reasons { h.combine(r.host + "|" + r.why) } }

  public var description: String { reasons.map { "\($0.host) \($0.why)" }.joined(separator: "; ") }
}

/// Where a new node of `pool` at `index` goes: pure.
///
/// Among the pool's hosts that are not cordoned, drained or in `avoid`, the one with the fewest
/// of the pool's nodes (spread), then the index's round-robin host (so a pool that fits
/// everywhere is placed exactly as before capacity was read), then the order of `hosts:` — the
/// first of those with room for `demand`.
public func chooseHost(
  pool: PoolSpec, index: Int, demand: Demand, nodesOnHost: [String: Int], ledger: CapacityLedger, draining: Set<String>,
  avoid: Set<String> = []
) -> Result<String, PlacementRefusal> {
  var hosts: [String] = []
  for h in pool.hosts where !hosts.contains(h) { hosts.append(h) }
  let preferred = placement(pool, index: index)
  var refusals: [(String, String)] = []
  var candidates: [(host: String, count: Int, preferred: Bool, order: Int)] = []
  for (order, host) in hosts.enumerated() {
    if avoid.contains(host) { continue }
    if draining.contains(host) {
      refusals.append((host, "is being drained"))
    } else if ledger.isCordoned(host) {
      refusals.append((host, "is cordoned (drover host uncordon lets new nodes back)"))
    } else {
      candidates.append((host, nodesOnHost[host] ?? 0, host == preferred, order))
    }
  }
  candidates.sort { ($0.count, $0.preferred ? 0 : 1, $0.order) < ($1.count, $1.preferred ? 0 : 1, $1.order) }
  for c in candidates {
    guard let why = ledger.shortfall(demand, on: c.host) else { return .success(c.host) }
    refusals.append((c.host, "is " + why))
  }
  if refusals.isEmpty { refusals.append((preferred, "is the node's own host, and the pool has no other")) }
  let order = Dictionary(hosts.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
  return .failure(PlacementRefusal(reasons: refusals.sorted { (order[$0.0] ?? 0) < (order[$1.0] ?? 0) }))
}

/// What replacing nodes on one host asks of it at the rollout's peak. vCPUs and memory: with
/// surge a batch of `concurrency` new nodes runs beside the old ones (the smaller of each pair
/// counts whole) while every node already replaced adds its growth; in place the old ones go
/// first, so only growth counts. Disk: a batch's new overlays exist before the old ones go, in
/// either mode. Pure.
public func replacementPeak(_ pairs: [(old: Demand, new: Demand)], concurrency: Int, surge: Bool) -> Demand {
  guard !pairs.isEmpty else { return Demand() }
  let batch = min(max(1, concurrency), pairs.count)
  var peak = Demand()
  var overlap = Demand()
  for p in pairs {
    let g = Demand.growth(from: p.old, to: p.new)
    peak.vcpu += g.vcpu
    peak.memory += g.memory
    let both = Demand.least(p.old, p.new)
    overlap = Demand(vcpu: max(overlap.vcpu, both.vcpu), memory: max(overlap.memory, both.memory), disk: max(overlap.disk, p.new.disk))
  }
  if surge {
    peak.vcpu += batch * overlap.vcpu
    peak.memory += batch * overlap.memory
  }
  peak.disk = batch * overlap.disk
  return peak
}
