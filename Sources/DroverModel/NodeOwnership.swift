/// What Drover records in each domain it owns (the `<drover:node>` metadata element).
///
/// libvirt is the source of truth: this record, read back from the domain, is Drover's whole
/// "state". A domain without it is foreign and is never changed.
public struct NodeOwnership: Sendable, Hashable, Codable {
  /// The Drover project that owns the node: nodes of other projects on the same host are
  /// treated like foreign domains (never changed, never deleted as "undeclared").
  public var project: String
  public var pool: String
  public var node: String
  public var index: Int
  /// The image reference as written in the spec (`demo@v1`) and its resolved digest ("" if unknown).
  public var image: String
  public var digest: String
  /// Digest of the node-shaping part of the spec when it was applied (informational).
  public var specHash: String
  /// Bumped at every replace or update.
  public var generation: Int
  public var vcpu: Int
  public var memoryMiB: UInt64
  public var diskMiB: UInt64
  public var network: String?
  public var labels: [String: String]
  /// Copied from the pool so a protected node stays protected after its pool file is removed.
  public var protect: Bool
  /// The pool's replica count when this node was written: tells a node deleted behind Drover's
  /// back (drift) from one the spec only now asks for (pending).
  public var replicas: Int
  /// The node's disk as `pool/volume`, or "" for a diskless node.
  public var disk: String
  /// The storage pool of `disk` ("" for a diskless node).
  public var diskPool: String {
    // As `split(separator: "/").first`, on the bytes: the planner asks once per node, and
    // Character splitting walked grapheme breaks.
    let path = disk.utf8.drop { $0 == UInt8(ascii: "/") }
    return String(Substring(path.prefix { $0 != UInt8(ascii: "/") }))
  }
  /// Set when the node never passed its health checks after it was created: `plan` replaces it
  /// and `drift` reports it, so a failed creation is never forgotten.
  public var healthFailed: Bool = false
  /// Set on every node a rollout creates, until the rollout ends: a plan on any machine (whose
  /// journal may not know the rollout) sees it is in progress and leaves its nodes alone.
  public var rollout: RolloutMark?
  /// Digest of the programs the pool ran on the Drover host when this record was written
  /// (`PoolPrograms`); "" when none, or written before Drover recorded them.
  public var hooks: String = ""
  /// The fixed IPv4 address the node's seed gave it (`static_addresses`); nil on DHCP. Kept in
  /// the record so a node is reached at its own address even after the pool's addressing changed.
  public var address: String? = nil
  /// The digest of the seed the node booted with (`CloudInitSeed.digest`); nil without one. A
  /// seed is read once per instance, so a different one (keys, user-data, addresses, Drover's
  /// own part) is a replacement.
  public var seed: String? = nil
  /// Set on a node a rollout replaced and parked for a warm rollback (#45): shut off, its disk
  /// kept. Nil: a serving node, the only kind that counts as a replica, is healed, started,
  /// drained or checked.
  public var kept: KeptNode? = nil

  /// Whether the node serves (every node but a kept one).
  public var isServing: Bool { kept == nil }

  public init(
    project: String = "default", pool: String, node: String, index: Int, image: String, digest: String, specHash: String, generation: Int,
    vcpu: Int, memoryMiB: UInt64, diskMiB: UInt64, network: String?, labels: [String: String], protect: Bool,
    replicas: Int = 0, disk: String = ""
  ) {
    self.replicas = replicas
    self.disk = disk
    self.project = project
    self.pool = pool
    self.node = node
    self.index = index
    self.image = image
    self.digest = digest
    self.specHash = specHash
    self.generation = generation
    self.vcpu = vcpu
    self.memoryMiB = memoryMiB
    self.diskMiB = diskMiB
    self.network = network
    self.labels = labels
    self.protect = protect
  }
}

/// What a kept node's record says of its keeping (#45): sealed with the rest of the record, so
/// a forged or copied kept record is refused like any other.
public struct KeptNode: Sendable, Hashable, Codable {
  /// The rollout that replaced it (its rollback, or `drover rollout undo`, starts it again).
  public var rollout: String
  /// When it goes (epoch seconds): the next `apply`, `heal` or `watch` pass removes it then.
  public var until: Double
  /// Whether its vCPU and memory stay reserved on its host (`capacity: reserve`, the default),
  /// so a rollback always fits; false with `capacity: disk-only`.
  public var reserves: Bool
  /// How it was kept: its memory saved to disk (`hibernated`: a rollback resumes it where it
  /// was, no boot) or shut off (nil: `stopped`, as every kept node before #45's hibernation).
  public var state: KeptState?

  public init(rollout: String, until: Double, reserves: Bool = true, state: KeptState? = nil) {
    self.rollout = rollout
    self.until = until
    self.reserves = reserves
    // One spelling of stopped (absent), as the sealed record has it.
    self.state = state == .stopped ? nil : state
  }

  /// Whether its memory was saved (a rollback restores it instead of booting it).
  public var isHibernated: Bool { state == .hibernated }
}

/// Which rollout made a node, recorded in the node itself (`rollout="…"` and friends).
public struct RolloutMark: Sendable, Hashable, Codable {
  public var id: String
  /// `canary`, `wave-N` or `rollback`.
  public var phase: String
  public var fromImage: String
  public var toImage: String
  /// `hostname/pid` of the process running it.
  public var by: String
  /// Nodes the rollout replaces.
  public var total: Int

  public init(id: String, phase: String, fromImage: String, toImage: String, by: String, total: Int) {
    self.id = id
    self.phase = phase
    self.fromImage = fromImage
    self.toImage = toImage
    self.by = by
    self.total = total
  }
}

/// One domain as seen on a host.
///
/// A value with its fields in one shared, copy-on-write box: `plan` and `drift` copy every
/// domain several times (grouping, sorting, by pool and index), and copying the fields themselves
/// retained some thirty strings each time — a visible part of a 1,000-node plan's CPU. A copy is
/// now one retain; a change copies the box only when it is shared. Equality, hashing and the
/// Codable form are the fields' own, unchanged.
public struct ObservedDomain: Sendable, Hashable, Codable {
  struct Fields: Sendable, Hashable, Codable {
    var name: String
    var uuid: String
    var state: String
    var isActive: Bool
    var ownership: NodeOwnership?
    var metadataDigest: String
    var trust: RecordTrust
    var actual: DomainShape?
  }

  /// Never mutated while shared (`update` copies it first), so sharing it across threads is safe.
  final class Box: @unchecked Sendable {
    var fields: Fields
    init(_ fields: Fields) { self.fields = fields }
  }

  private var box: Box

  private mutating func update(_ change: (inout Fields) -> Void) {
    if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
    change(&box.fields)
  }

  public var name: String {
    get { box.fields.name }
    set { update { $0.name = newValue } }
  }
  public var uuid: String {
    get { box.fields.uuid }
    set { update { $0.uuid = newValue } }
  }
  public var state: String {
    get { box.fields.state }
    set { update { $0.state = newValue } }
  }
  public var isActive: Bool {
    get { box.fields.isActive }
    set { update { $0.isActive = newValue } }
  }
  /// nil for a foreign domain.
  public var ownership: NodeOwnership? {
    get { box.fields.ownership }
    set { update { $0.ownership = newValue } }
  }
  /// Digest of the raw metadata text, for world fingerprints ("" for foreign domains).
  public var metadataDigest: String {
    get { box.fields.metadataDigest }
    set { update { $0.metadataDigest = newValue } }
  }
  /// Whether the record can be trusted (see `RecordTrust`): only a `.verified` record, or a
  /// `.legacy` one being sealed for the first time, is ever acted on.
  /// Fails closed: a domain nobody checked is never trusted.
  public var trust: RecordTrust {
    get { box.fields.trust }
    set { update { $0.trust = newValue } }
  }
  /// What the domain really is, read from its XML: the persistent config for `plan` (one read per
  /// domain), config and live XML for `drift`.
  public var actual: DomainShape? {
    get { box.fields.actual }
    set { update { $0.actual = newValue } }
  }

  public init(
    name: String, uuid: String, state: String, isActive: Bool, ownership: NodeOwnership?, metadataDigest: String,
    trust: RecordTrust = .mismatch("its record was not checked"), actual: DomainShape? = nil
  ) {
    box = Box(
      Fields(name: name, uuid: uuid, state: state, isActive: isActive, ownership: ownership, metadataDigest: metadataDigest, trust: trust, actual: actual))
  }

  public static func == (a: ObservedDomain, b: ObservedDomain) -> Bool { a.box === b.box || a.box.fields == b.box.fields }
  public func hash(into hasher: inout Hasher) { box.fields.hash(into: &hasher) }
  public init(from decoder: any Decoder) throws { box = Box(try Fields(from: decoder)) }
  public func encode(to encoder: any Encoder) throws { try box.fields.encode(to: encoder) }
}

/// What checking a domain's ownership record found.
///
/// Why it exists: the record alone must never decide destruction. A record is trusted only when
/// its keyed seal verifies and it is bound to this very domain (its UUID, its name, the host
/// entry it was written through); a clone, a copy or a forgery carries someone else's record.
public enum RecordTrust: Sendable, Hashable, Codable {
  /// Sealed with the project key and bound to this domain.
  case verified
  /// Bound to this domain, sealed with a key this machine does not hold: plan and drift are
  /// advisory, apply refuses.
  case unchecked(keyID: String)
  /// Written by a Drover from before keyed records (an intact unkeyed seal, or none), with its own
  /// name: sealed with the key by the next apply when nothing else claims its node.
  case legacy
  /// Never acted on, whatever it claims: why (a copy of another node, a record for another UUID or
  /// host, a seal that does not verify).
  case mismatch(String)

  public var isVerified: Bool { self == .verified }
  public var mismatchReason: String? {
    if case .mismatch(let why) = self { return why }
    return nil
  }
}

/// Every domain of one host.
public struct ObservedHost: Sendable, Hashable, Codable {
  public var uri: String
  public var domains: [ObservedDomain]
  /// Volumes in Drover's image pool on this host named like node overlays (`OverlayName`), so
  /// `plan` can show the ones no domain uses (left by a crash) and `apply` can remove them.
  public var overlays: [String]
  /// Every volume name in Drover's image pool on this host (images, boot files, their
  /// `.verified` marks): what a host with its own image folder already holds.
  public var poolVolumes: [String]
  /// Whether new domains there can use KVM (read on hosts that boot nodes; nil elsewhere).
  public var acceleration: HostAcceleration? = nil
  /// CPUs, memory and pool space (nil: not read, e.g. a host built in a test).
  public var capacity: HostCapacity? = nil

  public init(uri: String, domains: [ObservedDomain], overlays: [String] = [], poolVolumes: [String] = []) {
    self.uri = uri
    self.domains = domains
    self.overlays = overlays
    self.poolVolumes = poolVolumes
  }
}

/// The observed state of every host the specs name.
public struct ObservedWorld: Sendable, Hashable, Codable {
  public var hosts: [String: ObservedHost]
  /// Hosts that could not be read, with why. Their pools cannot be planned.
  public var unreachable: [String: String]

  public init(hosts: [String: ObservedHost] = [:], unreachable: [String: String] = [:]) {
    self.hosts = hosts
    self.unreachable = unreachable
  }
}

/// A domain's real shape, read from its XML, for drift detection.
public struct DomainShape: Sendable, Hashable, Codable {
  /// Persistent config: the vCPUs a boot starts with, and the maximum.
  public var vcpu: Int
  public var maxVcpu: Int
  public var memoryKiB: UInt64
  /// Live values (equal to the config for a stopped domain).
  public var liveVcpu: Int
  public var liveMemoryKiB: UInt64
  /// Disk sources as `pool/volume` or a file path.
  public var disks: [String]
  /// The libvirt networks of the domain's interfaces.
  public var networks: [String]
  public var title: String?

  public init(
    vcpu: Int, maxVcpu: Int, memoryKiB: UInt64, liveVcpu: Int, liveMemoryKiB: UInt64, disks: [String], networks: [String] = [],
    title: String?
  ) {
    self.networks = networks
    self.vcpu = vcpu
    self.maxVcpu = maxVcpu
    self.memoryKiB = memoryKiB
    self.liveVcpu = liveVcpu
    self.liveMemoryKiB = liveMemoryKiB
    self.disks = disks
    self.title = title
  }
}
