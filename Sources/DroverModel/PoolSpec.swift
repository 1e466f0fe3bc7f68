/// What a node pool should be, as declared in `pools/*.yaml`.
///
/// Plain values only: no source positions (those live in `DroverSpec`) and no I/O.
public struct PoolSpec: Sendable, Hashable, Codable {
  public var name: String
  /// libvirt URIs; nodes are spread over them round-robin by index.
  public var hosts: [String]
  public var replicas: Int
  public var image: ImageRef
  public var resources: Resources
  /// A libvirt network name, or nil for no NIC.
  public var network: String?
  public var labels: [String: String]
  public var health: [HealthCheckSpec]
  public var drain: DrainSpec
  public var upgrade: UpgradeStrategy
  public var errorBudget: NodeQuantity
  /// `error_budget.slo` + `max_burn_rate`: the service's budget, checked before each wave (#44).
  public var burnRate: BurnRateGate? = nil
  /// `window:`: when nodes may be replaced (#44); nil: any time (or drover.yaml's default).
  public var window: MaintenanceWindow? = nil
  /// Terraform's `prevent_destroy`: any delete or replace of this pool's nodes is a plan error.
  public var protect: Bool
  /// `accel: kvm|tcg` pins how new nodes run; nil: KVM where the host can, TCG elsewhere.
  public var accel: Accel? = nil
  /// `access.ssh_keys`: public keys every node's default user accepts (through its seed).
  public var sshKeys: [String] = []
  /// `cloud_init.user_data`: the pool's own `#cloud-config`, merged after Drover's.
  public var userData: String? = nil
  /// `static_addresses`: fixed IPv4 addresses through each node's seed instead of DHCP.
  public var staticAddresses: StaticAddresses? = nil
  /// `heartbeat`: how nodes say they are alive (nil: libvirt's domain state only).
  public var heartbeat: HeartbeatSpec? = nil
  /// `remediation`: whether and how `drover heal` replaces unhealthy nodes (nil: never).
  public var remediation: RemediationSpec? = nil
  /// `capacity:`: whether kept nodes reserve their vCPU and memory (#45).
  public var keptCapacity: KeptCapacity = .reserve

  /// Whether nodes get a cloud-init NoCloud seed: the pool gives them keys, user-data or static
  /// addresses, or checks them over SSH (the seed gives Drover's user its key).
  public var seeded: Bool { !sshKeys.isEmpty || userData != nil || reachedOverSSH || staticAddresses != nil }
  /// Whether a health check runs on the node over SSH.
  public var reachedOverSSH: Bool {
    if case .ssh = heartbeat?.source { return true }
    return health.contains { if case .ssh = $0.kind { true } else { false } }
  }

  public init(
    name: String, hosts: [String], replicas: Int, image: ImageRef, resources: Resources = Resources(),
    network: String? = nil, labels: [String: String] = [:], health: [HealthCheckSpec] = [],
    drain: DrainSpec = DrainSpec(), upgrade: UpgradeStrategy = UpgradeStrategy(),
    errorBudget: NodeQuantity = .count(0), protect: Bool = false
  ) {
    self.name = name
    self.hosts = hosts
    self.replicas = replicas
    self.image = image
    self.resources = resources
    self.network = network
    self.labels = labels
    self.health = health
    self.drain = drain
    self.upgrade = upgrade
    self.errorBudget = errorBudget
    self.protect = protect
  }
}

public struct Resources: Sendable, Hashable, Codable {
  public var vcpu: Int
  public var memory: ByteSize
  public var disk: ByteSize

  public init(vcpu: Int = 1, memory: ByteSize = .mebibytes(256), disk: ByteSize = .mebibytes(1024)) {
    self.vcpu = vcpu
    self.memory = memory
    self.disk = disk
  }
}

/// One readiness check run after a node starts; all of a node's checks must pass.
public struct HealthCheckSpec: Sendable, Hashable, Codable {
  public enum Kind: Sendable, Hashable, Codable {
    /// A regular expression searched for in the serial console log.
    case console(pattern: String)
    case tcp(port: Int)
    /// `expectStatus` defaults to 200; `bodyPattern` is an optional regex.
    case http(port: Int, path: String, expectStatus: Int, bodyPattern: String?)
    /// Run on the Drover host with the node's name/host/IP in the environment; exit 0 is healthy.
    case command(argv: [String])
    /// Run on the node over SSH as Drover's user, its host key pinned from its console; exit 0
    /// (and, when given, output matching `outputPattern`) is healthy.
    case ssh(command: String, outputPattern: String?)
  }

  public var kind: Kind
  public var timeout: TimeSpan
  public var interval: TimeSpan
  public var retries: Int

  public init(kind: Kind, timeout: TimeSpan = .seconds(120), interval: TimeSpan = .seconds(2), retries: Int = 3) {
    self.kind = kind
    self.timeout = timeout
    self.interval = interval
    self.retries = retries
  }
}

/// How a node is taken out of service before it is replaced.
public struct DrainSpec: Sendable, Hashable, Codable {
  public enum Backend: Sendable, Hashable, Codable {
    case none
    /// `kubectl`: the client to run (a path, or a name looked up on PATH); nil: `kubectl`.
    /// `nodeName`: the Kubernetes node's name, a `NodeTemplate` (nil: `{{hostname}}`, what the
    /// node's kubelet registers).
    case kubernetes(kubeconfig: String?, gracePeriod: TimeSpan, kubectl: String? = nil, nodeName: String? = nil)
    /// `nodeName`: the Slurm node's name, a `NodeTemplate` (nil: `{{hostname}}`).
    case slurm(nodeName: String?)
    case command(cordon: [String]?, drain: [String]?, uncordon: [String]?)
  }

  /// What a drain that runs past its timeout does: fail the node (default) or go on anyway.
  public enum OnTimeout: String, Sendable, Hashable, Codable { case fail, force }
  /// What happens to a node that failed: uncordon it (default) or leave it cordoned for a human.
  public enum OnFailure: String, Sendable, Hashable, Codable { case uncordon, leaveCordoned = "leave_cordoned" }

  public var backend: Backend
  public var timeout: TimeSpan
  public var onTimeout: OnTimeout
  public var onFailure: OnFailure

  public init(
    backend: Backend = .none, timeout: TimeSpan = .minutes(10), onTimeout: OnTimeout = .fail,
    onFailure: OnFailure = .uncordon
  ) {
    self.backend = backend
    self.timeout = timeout
    self.onTimeout = onTimeout
    self.onFailure = onFailure
  }
}

/// `upgrade.keep_previous`: how many replaced nodes stay for a warm rollback, and for how long.
public struct KeepPrevious: Sendable, Hashable, Codable {
  /// A count or a percentage of the pool's replicas (rounded up).
  public var nodes: NodeQuantity
  /// How long they stay after they are kept (`for:`, default 1h).
  public var duration: TimeSpan
  /// How long a replaced node's guest gets to shut down before it is powered off
  /// (`shutdown_timeout:`, default 30s).
  public var shutdownTimeout: TimeSpan
  /// How they are kept (`state:`, default `hibernated`, after AWS warm pools' pool states).
  public var state: KeptState

  public init(nodes: NodeQuantity, duration: TimeSpan = .minutes(60), shutdownTimeout: TimeSpan = .seconds(30), state: KeptState = .hibernated) {
    self.nodes = nodes
    self.duration = duration
    self.shutdownTimeout = shutdownTimeout
    self.state = state
  }
}

/// How a kept node waits for a rollback (`keep_previous.state`).
///
/// Why hibernated by default: a rollback that restores a guest's saved memory takes about a
/// second and skips the boot, which is most of a node's rollback; a stopped node boots again.
/// A guest whose memory cannot be saved (a shared folder or a passed-through device blocks it)
/// is shut off instead, and its record says so.
public enum KeptState: String, Sendable, Hashable, Codable, CaseIterable {
  /// Its memory is saved to a file on its host (libvirt's managed save) and its QEMU ends: it
  /// holds no vCPU or memory while kept, and a rollback resumes it where it was.
  case hibernated
  /// Shut down by its guest (powered off after `shutdown_timeout`): a rollback boots it.
  case stopped
}

/// What kept nodes hold on their host (`capacity:` in a pool).
public enum KeptCapacity: String, Sendable, Hashable, Codable, CaseIterable {
  /// Their vCPU and memory stay reserved: a rollback always fits (the default).
  case reserve
  /// Only their disks stay: the room goes to other nodes, and a rollback that no longer fits
  /// fails closed, naming the host.
  case diskOnly = "disk-only"
}

/// How a pool rolls to a new image.
public struct UpgradeStrategy: Sendable, Hashable, Codable {
  public enum OnBudgetExceeded: String, Sendable, Hashable, Codable { case rollback, pause }

  public var canary: NodeQuantity
  /// Wave sizes after the canary; the last size repeats until every node is done.
  public var waves: [NodeQuantity]
  public var maxSurge: NodeQuantity
  public var maxUnavailable: NodeQuantity
  public var soak: TimeSpan
  public var healthTimeout: TimeSpan
  public var onBudgetExceeded: OnBudgetExceeded
  /// Gates on the service's metrics, judged after the canary and after each wave (#43).
  public var analysis: [AnalysisGate] = []
  /// `keep_previous`: the last replaced nodes of a rollout are shut off and kept, disk and all,
  /// so a rollback starts them instead of rebuilding (#45); nil: every replaced node is deleted.
  public var keepPrevious: KeepPrevious? = nil

  public init(
    canary: NodeQuantity = .count(1), waves: [NodeQuantity] = [.percent(50)], maxSurge: NodeQuantity = .count(1),
    maxUnavailable: NodeQuantity = .count(0), soak: TimeSpan = .seconds(0), healthTimeout: TimeSpan = .minutes(5),
    onBudgetExceeded: OnBudgetExceeded = .rollback
  ) {
    self.canary = canary
    self.waves = waves
    self.maxSurge = maxSurge
    self.maxUnavailable = maxUnavailable
    self.soak = soak
    self.healthTimeout = healthTimeout
    self.onBudgetExceeded = onBudgetExceeded
  }
}
