import DroverBasics

extension HostBackend {
  public func observe() throws -> ObservedHost { try observe(detailed: false) }
  /// No lanes unless the backend opens them.
  public func lane(watchedBy watch: CallWatch) -> (any HostBackend)? { nil }
}

/// Backends that can tell a node's IP address (for tcp/http health checks and hooks).
public protocol AddressResolving {
  /// The node's first IPv4 address, or nil while it has none (no lease yet, or no network).
  func address(of node: String) -> String?
  /// Every IPv4 address of a running node, each with where it was learned (`lease`, `agent`),
  /// for `status -o wide`.
  func addresses(of node: String) -> [(address: String, source: String)]
}

/// Hosts that can reach a node's QEMU guest agent (agent heartbeats).
public protocol GuestAgentPinging {
  /// Nil when the node's guest agent answered now; otherwise why not. Returns within seconds.
  func pingAgent(node: String) -> String?
}

/// A host whose nodes log their console into its own image pool (another machine's files):
/// the console is read back through the host's connection.
public protocol ConsoleReading {
  /// The node's console log so far — its first `ConsoleBound.head` bytes, never more — or nil
  /// when this host's consoles are local files.
  func console(of node: String) -> [UInt8]?
  /// The last `maxBytes` of the node's console log and the offset they start at (heartbeats).
  func consoleTail(of node: String, maxBytes: UInt64) -> (bytes: [UInt8], base: UInt64)?
  /// Whether this host's consoles are read through it (else from the local console folder).
  var readsConsoles: Bool { get }
}

/// Everything the engine needs from one hypervisor host (implemented over libvirt by
/// `DroverLibvirt`). Signatures use model types only, so the engine never sees libvirt. Every
/// operation returns or throws within the host's deadline, also when the host stops answering.
public protocol HostBackend: AnyObject, Sendable {
  var uri: String { get }

  /// Whether domains on this host really boot (false for libvirt's test driver). Nodes get real
  /// overlay disks either way; only health checks that need a running guest differ.
  var bootsNodes: Bool { get }

  /// Every domain on the host with Drover's ownership record and its persistent shape, plus the
  /// overlay volumes in Drover's image pool. `detailed` also reads each running domain's live
  /// XML for drift detection.
  func observe(detailed: Bool) throws -> ObservedHost

  /// Defines and starts a node; returns its UUID. A failure leaves no domain and no overlay behind.
  @discardableResult
  func create(_ node: NodeDefinition) throws -> String

  /// Starts a stopped owned node.
  func start(node: String, uuid: String) throws

  /// Resumes a paused owned node (heal's gentlest rung).
  func resume(node: String, uuid: String) throws

  /// Parks an owned node for a warm rollback (#45): asks its guest to shut down, powers it off
  /// after `shutdownSeconds` if it has not, turns its autostart off, then writes `ownership` (a
  /// kept record). Its disk stays. Idempotent: a resumed rollout may ask again.
  func keep(node: String, uuid: String, as ownership: NodeOwnership, shutdownSeconds: Double) throws

  /// Returns a kept node to service: starts it on its own disk (unless it runs already), then
  /// writes `ownership` (a serving record). Idempotent.
  func revive(node: String, uuid: String, as ownership: NodeOwnership) throws

  /// Power-cycles an owned node on its own disk: stopped at once, then started (heal's `reset`
  /// rung; a cold boot works whatever the domain's `on_reboot`).
  func reset(node: String, uuid: String) throws

  /// Brings an owned node's vCPU, memory and ownership record to `ownership`, keeping its disk,
  /// kernel and everything else; restarts a running node when `restart` is set (vCPU/memory
  /// changes take effect at the next boot).
  func update(node: String, uuid: String, to ownership: NodeOwnership, restart: Bool) throws

  /// Stops and undefines an owned node, then deletes its overlay. Re-reads the domain's ownership
  /// first and refuses a domain that is foreign or whose UUID is not `uuid`.
  func delete(node: String, uuid: String) throws

  /// Writes a record sealed with the project key on the domain `node`, after checking that its
  /// UUID is `uuid` and it carries a record of the project (`drover adopt`, a person's decision).
  func adopt(node: String, uuid: String, as ownership: NodeOwnership) throws

  /// Deletes an overlay no domain uses, after checking again that none does and that it is named
  /// like a Drover overlay.
  func removeOrphanOverlay(volume: String) throws

  /// Whether the named domain is running now (nil when it cannot be read): a node that powers
  /// off during its health wait fails at once.
  func isRunning(node: String) -> Bool?

  /// Another connection to the same host for one worker of a wide apply, sharing this backend's
  /// key, call counts and stall mark, or nil (then the worker shares this one). Its calls run
  /// inline on the worker's thread under `watch` (the worker's waiter enforces their deadlines).
  /// Why: libvirt's client hands every reply between the threads that share a connection (a
  /// wake-up and a lock per call), while the daemon serves separate connections in parallel —
  /// measured on this machine, 1,000 overlay + define + start took 1.02 s on one connection,
  /// 0.59 s on four.
  func lane(watchedBy watch: CallWatch) -> (any HostBackend)?
}

/// Everything needed to define one node: its ownership record plus how it boots.
public struct NodeDefinition: Sendable, Hashable, Codable {
  public var ownership: NodeOwnership
  /// Where the node's disk comes from; nil defines a diskless node (test driver).
  public var boot: NodeBoot?
  /// How the domain's CPU runs, chosen by the plan from the host's capabilities (nil: TCG).
  public var accel: Accel? = nil
  /// The node's cloud-init seed, when its pool asks for one.
  public var seed: CloudInitSeed.Files? = nil
  /// Only the very build the record names (`ownership.digest`) may back the disk, never another
  /// build of the same `name@version`: a heal rebuilds a node as it was.
  public var exactBuild = false

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
  /// The node's cloud-init seed volume (ISO 9660, label `cidata`) in `storagePool`, read-only.
  public var seedVolume: String? = nil
  /// The console log is a file on the host (in its image pool), written by a pty's log — read
  /// back through libvirt — rather than a file serial console on this machine.
  public var consoleOnHost: Bool

  public init(
    storagePool: String, volume: String, kernel: String?, initrd: String?, cmdline: String?, consoleLog: String?, consoleOnHost: Bool = false
  ) {
    self.storagePool = storagePool
    self.volume = volume
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.consoleLog = consoleLog
    self.consoleOnHost = consoleOnHost
  }
}

/// How much of a console log a reader takes: a guest can print without end, and what Drover
/// looks for (host keys, a readiness line) comes early in a boot; heartbeats read a tail.
public enum ConsoleBound {
  /// The start of a boot's log read for host keys and console health checks.
  public static let head: UInt64 = 8 << 20
  /// The end of the log read for heartbeats.
  public static let tail: UInt64 = 64 << 10
  /// Bytes of one console line a pattern is matched against (the line's start).
  public static let line = 4096
}

/// What a node's domain record says of its SSH host keys (`HostKeyRecording`).
public enum RecordedHostKeys: Sendable, Hashable {
  /// No keys sealed into the record yet (nobody has pinned the node).
  case none
  /// Keys sealed with the project key for this very domain (its name and UUID).
  case keys([String])
  /// Keys this machine cannot check (sealed with a key it does not hold, or the record could not
  /// be read now): says nothing about the node.
  case cannotCheck(String)
  /// Keys that are not what a Drover with the project key sealed for this domain (edited, forged,
  /// copied from another node): never trusted.
  case forged(String)
}

/// Hosts that keep each node's SSH host keys in its domain record, sealed with the project key,
/// so every machine holding the key verifies a node without its console (which shows the keys
/// once per instance, and is truncated at every start).
public protocol HostKeyRecording {
  /// The keys sealed into the record of the domain `node` whose UUID is `uuid`.
  func recordedHostKeys(node: String, uuid: String) -> RecordedHostKeys
  /// Seals `keys` into the record of the owned domain `node` (UUID `uuid`, its ownership record
  /// verified). Keys already sealed there are never replaced by different ones: that throws.
  func recordHostKeys(_ keys: [String], node: String, uuid: String) throws
}
