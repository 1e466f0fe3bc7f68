/// What baking and node boot need from a host: Drover's image storage pool, overlay volumes and
/// short-lived build machines (implemented over libvirt by `DroverLibvirt`).
public protocol ImageHost: BuildMachineHost {
  var uri: String { get }

  /// Whether domains on this host really boot (false for libvirt's test driver, whose storage is
  /// in memory: its image pool has no folder to mark and its overlays no real backing file).
  var bootsNodes: Bool { get }

  /// Makes sure Drover's own dir pool `name` exists at `directory` and is running. A pool of that
  /// name that Drover did not create (no marker file in its folder) is refused, never reused. On a
  /// host that does not boot nodes the pool lives in libvirt's memory and only its path is checked.
  func ensureImagePool(name: String, directory: String) throws

  /// Re-reads the pool's folder (after an image was moved into it).
  func refreshImagePool(name: String) throws

  /// Creates a qcow2 overlay volume backed by `backingPath` (format given explicitly), replacing a
  /// leftover of the same name.
  func createOverlay(pool: String, name: String, backingPath: String, capacityBytes: UInt64) throws

  /// Deletes a volume; a missing one is not an error.
  func deleteVolume(pool: String, name: String) throws

  /// The size in bytes and host path of a volume, or nil when the pool has none of that name.
  func volume(pool: String, name: String) throws -> (bytes: UInt64, path: String)?

  /// Uploads the local file `file` as volume `name` through the connection (a stream, no shared
  /// file system), hashing what is sent; returns its SHA-256. The volume is made anew.
  func upload(file: String, pool: String, name: String) throws -> String

  /// Uploads `bytes` as volume `name` (a small record), made anew; returns their SHA-256.
  func upload(bytes: [UInt8], pool: String, name: String) throws -> String

  /// Every volume name of the pool, re-read first (empty when there is no such pool).
  func volumeNames(pool: String) throws -> [String]

  /// The backing file path of volume `name` (an overlay), or nil.
  func backingPath(pool: String, name: String) throws -> String?

  /// Downloads volume `name` through the connection into the open file `fd`, hashing it.
  func download(pool: String, name: String, into fd: Int32) throws -> (bytes: UInt64, sha256: String)

  /// Writes the empty volume `<name>.verified`: `name` was read back intact once.
  func markVerified(pool: String, name: String) throws

  /// Downloads volume `name` through the connection and returns the SHA-256 of its bytes.
  func digest(pool: String, name: String) throws -> String

  /// The bytes of volume `name` from `offset` (nil: no such volume), read through the connection.
  func read(pool: String, name: String, offset: UInt64) throws -> [UInt8]?
}

/// Where a bake's short-lived build machines run: libvirt domains (`DroverLibvirt`), or QEMU
/// processes Drover starts itself for local bakes (`DroverBake.LocalBuildMachines`).
public protocol BuildMachineHost: AnyObject, Sendable {
  /// Boots a build machine, marked so a leftover one can be found and removed after a crash.
  func bootBuildMachine(_ machine: BuildMachine) throws

  /// Stops and removes a build machine if it exists (only machines carrying the build marker).
  func removeBuildMachine(name: String) throws

  /// Names of every build machine (leftovers of interrupted bakes included).
  func buildMachineNames() throws -> [String]
}

/// A short-lived VM that runs a recipe's commands against the image being built.
public struct BuildMachine: Sendable, Hashable {
  public var name: String
  public var kernel: String
  public var initrd: String
  public var cmdline: String
  /// Raw or qcow2 disk files, attached as vda, vdb, …
  public var disks: [(path: String, format: String)]
  public var consoleLog: String
  public var memoryMiB: Int

  public init(name: String, kernel: String, initrd: String, cmdline: String, disks: [(path: String, format: String)], consoleLog: String, memoryMiB: Int = 256) {
    self.name = name
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.disks = disks
    self.consoleLog = consoleLog
    self.memoryMiB = memoryMiB
  }

  public static func == (a: Self, b: Self) -> Bool { a.name == b.name }
  public func hash(into h: inout Hasher) { h.combine(name) }
}

/// Names of the volumes Drover keeps in a host's own image pool, shared by whoever writes,
/// reads or deletes them (the libvirt adapter, node images, the planner, the CLI).
public enum PoolVolumeNames {
  /// The empty volume that says `name` was read back intact once.
  public static func verifiedMark(of name: String) -> String { name + ".verified" }
  /// A node's console log on a host that keeps consoles in its pool.
  public static func console(of node: String) -> String { "console-\(node).log" }
  /// The record of a pushed image (its manifest and boot files) beside its artifact: what lets
  /// the image be fetched back from the host, and its boot files be collected with it.
  public static func imageRecord(of artifact: String) -> String {
    (artifact.hasSuffix(".qcow2") ? String(artifact.dropLast(6)) : artifact) + ".image.json"
  }
  /// A boot file's content-addressed volume (`kernel-<12 hex>`, `initrd-<12 hex>`).
  public static func bootFile(kind: String, sha256: String) -> String { "\(kind)-\(sha256.prefix(12))" }
}
