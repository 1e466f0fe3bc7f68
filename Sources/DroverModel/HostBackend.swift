extension HostBackend {
  public func observe() throws -> ObservedHost { try observe(detailed: false) }
}

/// Backends that can tell a node's IP address (for tcp/http health checks and hooks).
public protocol AddressResolving {
  /// The node's first IPv4 address, or nil while it has none (no lease yet, or no network).
  func address(of node: String) -> String?
}

/// Everything the engine needs from one hypervisor host (implemented over libvirt by
/// `DroverLibvirt`). Signatures use model types only, so the engine never sees libvirt.
public protocol HostBackend: AnyObject, Sendable {
  var uri: String { get }

  /// Every domain on the host with Drover's ownership record where present. `detailed` also
  /// reads each domain's real shape (XML) for drift detection.
  func observe(detailed: Bool) throws -> ObservedHost

  /// Defines and starts a node. A failure leaves no domain behind.
  func create(_ node: NodeDefinition) throws

  /// Starts a stopped owned node.
  func start(node: String, uuid: String) throws

  /// Applies new vCPU/memory/labels to an owned node; restarts it when `restart` is set.
  func update(_ node: NodeDefinition, uuid: String, restart: Bool) throws

  /// Stops and undefines an owned node. Re-reads the domain's ownership first and refuses a
  /// domain that is foreign or whose UUID is not `uuid`.
  func delete(node: String, uuid: String) throws
}

/// Everything needed to define one node: its ownership record plus how it boots.
public struct NodeDefinition: Sendable, Hashable, Codable {
  public var ownership: NodeOwnership
  /// Where the node's disk comes from; nil defines a diskless node (test driver).
  public var boot: NodeBoot?

  public init(ownership: NodeOwnership, boot: NodeBoot? = nil) {
    self.ownership = ownership
    self.boot = boot
  }

  public var name: String { ownership.node }
}

/// How a node boots: its overlay disk's storage pool/volume and direct-kernel-boot settings.
public struct NodeBoot: Sendable, Hashable, Codable {
  public var storagePool: String
  public var volume: String
  public var kernel: String?
  public var initrd: String?
  public var cmdline: String?
  public var consoleLog: String?

  public init(storagePool: String, volume: String, kernel: String?, initrd: String?, cmdline: String?, consoleLog: String?) {
    self.storagePool = storagePool
    self.volume = volume
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.consoleLog = consoleLog
  }
}
