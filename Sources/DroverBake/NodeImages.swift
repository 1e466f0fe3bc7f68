import DroverBasics
import DroverModel
import Foundation

/// Gives a node its disk just before it is defined: a verified golden image and a qcow2 overlay.
///
/// Nodes never get a full copy: the overlay's backing store is the golden image (format given
/// explicitly), so creating one is a small constant cost whatever the image size.
public final class NodeImages: @unchecked Sendable {
  let catalogue: ImageCatalogue
  let poolName: String
  let consoleDirectory: String
  /// The machine's kernel and roots: what a manifest's boot files may be.
  let machine: MachineSettings
  let hostPaths: HostPathPolicy
  private var verified: Set<String> = []
  private var readyPools: Set<String> = []
  private let lock = NSLock()

  public init(
    catalogue: ImageCatalogue, poolName: String, consoleDirectory: String, machine: MachineSettings = MachineSettings(),
    hostPaths: HostPathPolicy = .projectOnly
  ) {
    self.catalogue = catalogue
    self.poolName = poolName
    self.consoleDirectory = consoleDirectory
    self.machine = machine
    self.hostPaths = hostPaths
  }

  /// Why a manifest's boot files may not be booted, or nil. A manifest is a file in the image
  /// folder — one planted there could name `initrd: /etc/shadow`, which libvirt would load into
  /// a VM's memory — so its kernel must be the machine's or pass the path policy, and its initrd
  /// be Drover's own boot initramfs in the image folder or pass the policy.
  func bootFilesProblem(_ m: ImageManifest) -> String? {
    let real = SafeFiles.realPath
    let kernelOK = m.kernel == machine.kernel || (real(m.kernel) != nil && real(m.kernel) == real(machine.kernel))
      || (m.kernel.hasPrefix("/") && hostPaths.resolvedProblem(m.kernel, in: "", realPath: real) == nil)
    if !kernelOK { return "its kernel \(Terminal.escaped(m.kernel)) is neither the machine's kernel nor under an allowed root" }
    let name = (m.initrd as NSString).lastPathComponent
    let folder = (m.initrd as NSString).deletingLastPathComponent
    let ownInitramfs = (folder == catalogue.directory || (real(folder) != nil && real(folder) == real(catalogue.directory))) && name.hasPrefix("boot-")
      && name.hasSuffix(".cpio.gz") && !name.contains("/")
    let initrdOK = ownInitramfs || (m.initrd.hasPrefix("/") && hostPaths.resolvedProblem(m.initrd, in: "", realPath: real) == nil)
    if !initrdOK { return "its initrd \(Terminal.escaped(m.initrd)) is neither Drover's boot initramfs in \(catalogue.directory) nor under an allowed root" }
    return nil
  }

  /// Gives a new domain (create, replace, rollback) its own overlay. Updates never come here:
  /// they keep the node's disk.
  ///
  /// On a host that boots nodes the image must be baked and its checksum verified; on one that
  /// does not (the test driver) an unbaked image gets an overlay backed by the path the image
  /// would have, so every disk path is exercised in the fast tests too.
  public func prepare(_ node: NodeDefinition, host: any ImageHost) throws -> NodeDefinition {
    let o = node.ownership
    let manifest = catalogue.image(forKey: o.digest) ?? ImageRef(parsing: o.image).flatMap(catalogue.image(for:))
    var result = node
    let backing: String
    if let manifest {
      if host.bootsNodes {
        try lock.withLock {
          if !verified.contains(manifest.key) {
            if let why = bootFilesProblem(manifest) {
              throw Diagnostic.error(
                "image.tampered", "image \(manifest.reference) is refused: \(why)", subject: "image \(manifest.reference)",
                hint: "bake it again with drover bake; a manifest is never trusted to choose host files")
            }
            try ImageVerifier.verify(manifest, in: catalogue)
            verified.insert(manifest.key)
          }
        }
      }
      result.ownership.digest = manifest.key
      backing = catalogue.path(of: manifest)
    } else if !host.bootsNodes {
      backing = "\(catalogue.directory)/unbaked-\(o.image.replacingOccurrences(of: "@", with: "-")).qcow2"
    } else {
      throw Diagnostic.error(
        "image.missing", "image \(o.image) has not been baked", subject: "node \(o.node) on \(host.uri)",
        hint: "run: drover bake  (recipes in images/)")
    }
    try ensurePool(on: host)
    if host.bootsNodes {
      try FileManager.default.createDirectory(atPath: consoleDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
      // A new domain starts a new log: an earlier domain of the same name must not pass its checks.
      try? FileManager.default.removeItem(atPath: "\(consoleDirectory)/\(o.node).log")
    }
    let volume = OverlayName(project: o.project, pool: o.pool, index: o.index, generation: o.generation).volume
    try host.createOverlay(
      pool: poolName, name: volume, backingPath: backing,
      capacityBytes: max(o.diskMiB << 20, manifest?.recipe.size.bytes ?? 0))
    CrashPoint.reached("overlay-created")
    result.ownership.disk = "\(poolName)/\(volume)"
    result.boot = NodeBoot(
      storagePool: poolName, volume: volume, kernel: manifest?.kernel, initrd: manifest?.initrd, cmdline: manifest?.cmdline,
      consoleLog: host.bootsNodes ? "\(consoleDirectory)/\(o.node).log" : nil)
    return result
  }

  /// Prepares Drover's image pool once per host and process (nodes are prepared in parallel).
  func ensurePool(on host: any ImageHost) throws {
    try lock.withLock {
      guard !readyPools.contains(host.uri) else { return }
      try host.ensureImagePool(name: poolName, directory: catalogue.directory)
      readyPools.insert(host.uri)
    }
  }
}
