/// What one host has for new nodes, as read in one call per host (see `LibvirtHostBackend`).
///
/// Why "committed" and not the kernel's free memory alone: a guest touches its memory slowly, so a
/// host full of idle VMs looks empty to the kernel. Placement counts what libvirt *gives* the
/// host's domains against the host's size times its overcommit ratio (`HostLimits`), and on a
/// host that is not overcommitted also never asks more than the kernel says is available now.
public struct HostCapacity: Sendable, Hashable, Codable {
  public var cpus: Int
  public var memoryBytes: UInt64
  /// Free plus buffers and cache now, where the host's kernel figure could be read (nil: not).
  public var availableMemoryBytes: UInt64?
  /// Free bytes of Drover's image pool there (nil: the host has no such pool yet).
  public var poolFreeBytes: UInt64?
  /// libvirt's test driver: fixed made-up figures (16 CPUs, 3 GiB) for domains that use nothing,
  /// so they bind only where the host entry sets ratios on purpose.
  public var simulated: Bool

  public init(cpus: Int, memoryBytes: UInt64, availableMemoryBytes: UInt64? = nil, poolFreeBytes: UInt64? = nil, simulated: Bool = false) {
    self.cpus = cpus
    self.memoryBytes = memoryBytes
    self.availableMemoryBytes = availableMemoryBytes
    self.poolFreeBytes = poolFreeBytes
    self.simulated = simulated
  }
}

/// A host entry's overcommit ratios (`max_vcpu_ratio`, `max_memory_ratio`, `max_disk_ratio` in
/// drover.yaml): the share of the host's CPUs, memory and pool bytes its domains may be given.
/// nil: the default (4 vCPUs per CPU, no memory or disk overcommit).
public struct HostLimits: Sendable, Hashable, Codable {
  public var maxVcpuRatio: Double?
  public var maxMemoryRatio: Double?
  public var maxDiskRatio: Double?

  public static let defaultVcpuRatio = 4.0
  public static let defaultMemoryRatio = 1.0
  public static let defaultDiskRatio = 1.0

  public init(maxVcpuRatio: Double? = nil, maxMemoryRatio: Double? = nil, maxDiskRatio: Double? = nil) {
    self.maxVcpuRatio = maxVcpuRatio
    self.maxMemoryRatio = maxMemoryRatio
    self.maxDiskRatio = maxDiskRatio
  }

  /// Whether any ratio was set (a simulated host's figures bind only then).
  public var isSet: Bool { maxVcpuRatio != nil || maxMemoryRatio != nil || maxDiskRatio != nil }
  public var vcpuRatio: Double { maxVcpuRatio ?? HostLimits.defaultVcpuRatio }
  public var memoryRatio: Double { maxMemoryRatio ?? HostLimits.defaultMemoryRatio }
  public var diskRatio: Double { maxDiskRatio ?? HostLimits.defaultDiskRatio }
}

/// A host cordon: a marker volume in Drover's image pool on the host, so every machine and CI
/// runner that reads the host sees it (it is listed with the pool's volumes, which plan reads
/// anyway: no extra call). A cordoned host gets no new nodes.
///
/// Why it is honoured unsigned: a cordon only ever stops Drover from placing; a forged one can
/// keep nodes off a host, never make Drover touch one.
public enum HostCordon {
  public static let volume = ".drover-cordon"

  public static func isCordoned(_ host: ObservedHost) -> Bool { host.poolVolumes.contains(volume) }
}

/// The host's CPU count from its capabilities XML (`<topology><cells>` … `<cpus num='N'>` per cell).
public enum HostTopology {
  /// The sum of every cell's CPUs, or nil when the document lists none.
  public static func cpus(capabilities: String) -> Int? {
    guard let topology = HostAcceleration.section(capabilities, from: "<topology>", to: "</topology>") else { return nil }
    var total = 0
    var rest = topology[...]
    while let r = rest.range(of: "<cpus num=") {
      let after = rest[r.upperBound...].dropFirst()  // the quote
      total += Int(after.prefix { $0.isNumber }) ?? 0
      rest = after
    }
    return total > 0 ? total : nil
  }
}

/// A host whose cordon can be set and lifted (through libvirt: the host may be another machine).
public protocol HostCordoning {
  /// Writes (or removes) the cordon marker in Drover's image pool `imagePool`, preparing the pool
  /// at `directory` on the host first when it does not exist. Idempotent.
  func setCordon(_ cordoned: Bool, imagePool: String, directory: String) throws
}
