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
  /// Drover's image folder on each host that has its own (host entries with `image_dir`):
  /// there images are pushed through libvirt and everything a node needs lives on the host.
  let hostDirectories: [String: String]
  private var verified: Set<String> = []
  private var readyPools: Set<String> = []
  /// Boot files (kernel, initrd) hashed by this process, by path.
  private var bootDigests: [String: String] = [:]
  /// `host|volume` pairs pushed (or found) and verified by this process.
  private var onHost: Set<String> = []
  private let lock = NSLock()
  /// One transfer at a time per host; different hosts in parallel.
  private var transfers: [String: NSLock] = [:]

  public init(
    catalogue: ImageCatalogue, poolName: String, consoleDirectory: String, machine: MachineSettings = MachineSettings(),
    hostPaths: HostPathPolicy = .projectOnly, hostDirectories: [String: String] = [:]
  ) {
    self.catalogue = catalogue
    self.poolName = poolName
    self.consoleDirectory = consoleDirectory
    self.machine = machine
    self.hostPaths = hostPaths
    self.hostDirectories = hostDirectories
  }

  /// Drover's image folder on `uri`'s own file system (a host entry's `image_dir`), or nil when
  /// the host uses the local image folder.
  public func remoteDirectory(of uri: String) -> String? { hostDirectories[uri] }

  /// The name of a node's console log volume in the host's image pool (remote hosts).
  public static func consoleVolume(of node: String) -> String { PoolVolumeNames.console(of: node) }

  /// Why a manifest's boot files may not be booted, or nil. A manifest is a file in the image
  /// folder — one planted there could name `initrd: /etc/shadow`, which libvirt would load into
  /// a VM's memory — so its kernel must be the machine's or pass the path policy, and its initrd
  /// be Drover's own boot initramfs in the image folder or pass the policy.
  func bootFilesProblem(_ m: ImageManifest) -> String? {
    let real = SafeFiles.realPath
    let inImageFolder = { (path: String) in
      let folder = (path as NSString).deletingLastPathComponent
      return folder == self.catalogue.directory || (real(folder) != nil && real(folder) == real(self.catalogue.directory))
    }
    // A kernel fetched from a host with its image (`kernel-<12 hex>` in the image folder) is
    // Drover's own file, like its boot initramfs.
    let fetchedKernel = inImageFolder(m.kernel) && ImageNames.isFetchedKernel((m.kernel as NSString).lastPathComponent)
    let kernelOK = m.kernel == machine.kernel || (real(m.kernel) != nil && real(m.kernel) == real(machine.kernel)) || fetchedKernel
      || (m.kernel.hasPrefix("/") && hostPaths.resolvedProblem(m.kernel, in: "", realPath: real) == nil)
    if !kernelOK { return "its kernel \(Terminal.escaped(m.kernel)) is neither the machine's kernel nor under an allowed root" }
    let name = (m.initrd as NSString).lastPathComponent
    let ownInitramfs = inImageFolder(m.initrd) && name.hasPrefix("boot-")
      && (name.hasSuffix(".cpio.gz") || ImageNames.isImageInitrd(name)) && !name.contains("/")
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
    if let remote = remoteDirectory(of: host.uri) { return try prepareRemote(node, host: host, directory: remote) }
    let o = node.ownership
    let manifest = try build(for: node, host: host)
    var result = node
    let backing: String
    if let manifest {
      if host.bootsNodes {
        try verifyOnce(manifest)
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
    let volume = OverlayName(of: o).volume
    try host.createOverlay(
      pool: poolName, name: volume, backingPath: backing,
      capacityBytes: max(o.diskMiB << 20, manifest?.recipe.size.bytes ?? 0))
    CrashPoint.reached("overlay-created")
    result.ownership.disk = "\(poolName)/\(volume)"
    result.boot = NodeBoot(
      storagePool: poolName, volume: volume, kernel: manifest?.kernel, initrd: manifest?.initrd, cmdline: manifest?.cmdline,
      consoleLog: host.bootsNodes ? "\(consoleDirectory)/\(o.node).log" : nil)
    try attachSeed(&result, host: host)
    return result
  }

  /// Prepares Drover's image pool once per host and process (nodes are prepared in parallel).
  func ensurePool(on host: any ImageHost, directory: String? = nil) throws {
    try lock.withLock {
      guard !readyPools.contains(host.uri) else { return }
      try host.ensureImagePool(name: poolName, directory: directory ?? catalogue.directory)
      readyPools.insert(host.uri)
    }
  }

  /// A node on a host with its own image folder: the image, kernel and initrd are volumes of
  /// the host's pool — pushed through libvirt when missing, and read back and hashed once per
  /// process before any node uses them — and the console is logged into that pool, read back
  /// through libvirt. Nothing here assumes the host shares this machine's files.
  /// The build a new domain's disk comes from: the one its record names, else the current build
  /// of its `name@version` — unless the node must be rebuilt exactly (`exactBuild`, a heal).
  func build(for node: NodeDefinition, host: any ImageHost) throws -> ImageManifest? {
    let o = node.ownership
    if let exact = catalogue.image(forKey: o.digest) { return exact }
    if node.exactBuild, !o.digest.isEmpty, host.bootsNodes {
      throw Diagnostic.error(
        "image.build-gone", "build \(o.digest.prefix(12)) of \(o.image), which node \(o.node) ran, is no longer in the image store",
        subject: "node \(o.node) on \(host.uri)",
        hint: "a heal rebuilds a node from its own build; fetch it back (drover images fetch) or replace the node with drover apply --replace \(o.node)")
    }
    return ImageRef(parsing: o.image).flatMap(catalogue.image(for:))
  }

  func prepareRemote(_ node: NodeDefinition, host: any ImageHost, directory: String) throws -> NodeDefinition {
    let o = node.ownership
    var result = node
    try ensurePool(on: host, directory: directory)
    let manifest = try build(for: node, host: host)
    let backing: String
    var kernel: String?, initrd: String?
    if let manifest {
      result.ownership.digest = manifest.key
      if host.bootsNodes {
        try verifyOnce(manifest)
        let placed = try place(manifest, on: host)
        backing = placed.backing
        kernel = placed.kernel
        initrd = placed.initrd
      } else {
        backing = directory + "/" + manifest.artifact
      }
    } else if !host.bootsNodes {
      backing = "\(directory)/unbaked-\(o.image.replacingOccurrences(of: "@", with: "-")).qcow2"
    } else {
      throw Diagnostic.error(
        "image.missing", "image \(o.image) has not been baked", subject: "node \(o.node) on \(host.uri)",
        hint: "run: drover bake  (recipes in images/)")
    }
    let volume = OverlayName(of: o).volume
    if host.bootsNodes { try host.deleteVolume(pool: poolName, name: Self.consoleVolume(of: o.node)) }  // a new domain, a new log
    try host.createOverlay(
      pool: poolName, name: volume, backingPath: backing, capacityBytes: max(o.diskMiB << 20, manifest?.recipe.size.bytes ?? 0))
    CrashPoint.reached("overlay-created")
    result.ownership.disk = "\(poolName)/\(volume)"
    result.boot = NodeBoot(
      storagePool: poolName, volume: volume, kernel: kernel, initrd: initrd, cmdline: manifest?.cmdline,
      consoleLog: host.bootsNodes ? directory + "/" + Self.consoleVolume(of: o.node) : nil, consoleOnHost: true)
    try attachSeed(&result, host: host)
    return result
  }

  /// Gives a node of a seeded pool its cloud-init seed: an ISO 9660 volume labelled `cidata`,
  /// built here without running a guest and uploaded through libvirt into the node's pool (so
  /// remote hosts get theirs the same way), named after the node like its overlay. On a host
  /// that cannot boot nodes (the test driver has no volume upload) there is none. A seed that
  /// cannot be made takes the new overlay with it: nothing is left half-prepared.
  func attachSeed(_ node: inout NodeDefinition, host: any ImageHost) throws {
    guard let files = node.seed, host.bootsNodes, let boot = node.boot else { return }
    let o = node.ownership
    let name = OverlayName(of: o, kind: .seed).volume
    do {
      let bytes = try SeedImage.build(files, runner: ProcessRunner())
      _ = try host.upload(bytes: bytes, pool: boot.storagePool, name: name)
    } catch {
      try? host.deleteVolume(pool: boot.storagePool, name: boot.volume)
      throw error
    }
    node.boot?.seedVolume = name
  }

  func fileDigest(_ path: String) throws -> String { try FileDigestCache.sha256(ofFile: path) }

  /// A boot file's content-addressed volume name (`kernel-<sha>`) and digest, hashed once per
  /// process: every node on a remote host needs them, and a kernel is megabytes.
  func bootVolume(_ path: String, kind: String) throws -> (name: String, sha256: String) {
    if let known = lock.withLock({ bootDigests[path] }) { return (PoolVolumeNames.bootFile(kind: kind, sha256: known), known) }
    let sha = try fileDigest(path)
    lock.withLock { bootDigests[path] = sha }
    return (PoolVolumeNames.bootFile(kind: kind, sha256: sha), sha)
  }

  /// An image's files on a host with its own image folder: its artifact, kernel and initrd as
  /// volumes there (pushed when missing, verified once per process), and its record beside them.
  func place(_ manifest: ImageManifest, on host: any ImageHost) throws -> (backing: String, kernel: String, initrd: String) {
    let record = try self.record(of: manifest)
    let backing = try pushed(catalogue.path(of: manifest), as: manifest.artifact, sha256: manifest.artifactSHA256, to: host)
    let kernel = try pushed(manifest.kernel, as: record.kernel.volume, sha256: record.kernel.sha256, to: host)
    let initrd = try pushed(manifest.initrd, as: record.initrd.volume, sha256: record.initrd.sha256, to: host)
    try pushRecord(record, to: host)
    return (backing, kernel, initrd)
  }

  /// The record written beside an image on a host (`HostImageRecord`).
  func record(of manifest: ImageManifest) throws -> HostImageRecord {
    let k = try bootVolume(manifest.kernel, kind: "kernel"), i = try bootVolume(manifest.initrd, kind: "initrd")
    var m = manifest
    m.buildLog = ""  // this machine's file: nothing another machine could read
    return HostImageRecord(manifest: m, kernel: .init(volume: k.name, sha256: k.sha256), initrd: .init(volume: i.name, sha256: i.sha256))
  }

  /// Writes an image's record after its files were verified on the host: read back, then
  /// marked, like them. Present with its mark: nothing sent (a second push is a lookup).
  /// - Returns: whether it was sent now.
  @discardableResult
  func pushRecord(_ record: HostImageRecord, to host: any ImageHost) throws -> Bool {
    let key = host.uri + "|" + record.volume
    if lock.withLock({ onHost.contains(key) }) { return false }
    if try host.volume(pool: poolName, name: record.volume) != nil, try host.volume(pool: poolName, name: PoolVolumeNames.verifiedMark(of: record.volume)) != nil {
      lock.withLock { _ = onHost.insert(key) }
      return false
    }
    let bytes = try record.encoded()
    let expected = ContentDigest.of(bytes).hex
    let sent = try host.upload(bytes: bytes, pool: poolName, name: record.volume)
    let back = try host.digest(pool: poolName, name: record.volume)
    guard sent == expected, back == expected else {
      try? host.deleteVolume(pool: poolName, name: record.volume)
      throw Diagnostic.error(
        "image.tampered", "the record \(record.volume) on \(host.uri) does not match what was sent", subject: record.volume,
        hint: "check the host's storage; the record was deleted")
    }
    try host.markVerified(pool: poolName, name: record.volume)
    lock.withLock { _ = onHost.insert(key) }
    return true
  }

  /// What `push` did with each file of an image on a host.
  public struct PushOutcome: Sendable {
    /// Volume names sent now (then read back and verified).
    public var sent: [String] = []
    /// Volume names already there with their `.verified` mark: nothing sent, nothing read.
    public var present: [String] = []
    public var bytesSent: UInt64 = 0
  }

  /// Pushes an image (its qcow2, kernel and initrd) to a host with its own image folder ahead of
  /// time (`drover images push`). A file already there and marked verified costs one lookup
  /// each — a second push is a no-op — while apply still reads a host's copy back once per
  /// process before a node uses it.
  public func push(_ manifest: ImageManifest, to host: any ImageHost) throws -> PushOutcome {
    guard let directory = remoteDirectory(of: host.uri) else {
      throw Diagnostic.error(
        "image.push", "\(host.uri) uses this machine's image folder: there is nothing to push", subject: host.uri,
        hint: "give the host an image_dir in drover.yaml's hosts: to keep its images on it")
    }
    try ensurePool(on: host, directory: directory)
    var outcome = PushOutcome()
    let record = try self.record(of: manifest)
    let files = [(catalogue.path(of: manifest), manifest.artifact, manifest.artifactSHA256), (manifest.kernel, record.kernel.volume, record.kernel.sha256), (manifest.initrd, record.initrd.volume, record.initrd.sha256)]
    for (file, name, sha) in files {
      let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.uint64Value ?? 0
      // Names are content-addressed: the same name with its mark is the same bytes, verified.
      // (Not compared by size: libvirt reports a qcow2 volume's virtual size.)
      if try host.volume(pool: poolName, name: name) != nil, try host.volume(pool: poolName, name: PoolVolumeNames.verifiedMark(of: name)) != nil {
        outcome.present.append(name)
        continue
      }
      try verifyOnce(manifest)  // only what is sent must be checked here first
      _ = try pushed(file, as: name, sha256: sha, to: host)
      outcome.sent.append(name)
      outcome.bytesSent += size
    }
    if try pushRecord(record, to: host) { outcome.sent.append(record.volume) } else { outcome.present.append(record.volume) }
    return outcome
  }

  /// The local image checked once per process: its boot files and its checksum.
  func verifyOnce(_ manifest: ImageManifest) throws {
    try lock.withLock {
      guard !verified.contains(manifest.key) else { return }
      if let why = bootFilesProblem(manifest) {
        throw Diagnostic.error(
          "image.tampered", "image \(manifest.reference) is refused: \(why)", subject: "image \(manifest.reference)",
          hint: "bake it again with drover bake; a manifest is never trusted to choose host files")
      }
      try ImageVerifier.verify(manifest, in: catalogue)
      // An image that brought its own kernel and initrd recorded their digests: they are
      // files in the image folder, so they are checked like the image before a node boots them.
      for (path, expected) in [(manifest.kernel, manifest.kernelSHA256), (manifest.initrd, manifest.initrdSHA256)] {
        guard let expected else { continue }
        let actual = try? fileDigest(path)
        if actual != expected {
          throw Diagnostic.error(
            "image.tampered", "image \(manifest.reference) is refused: its boot file \(path) \(actual == nil ? "is missing" : "does not match the digest its manifest records")",
            subject: "image \(manifest.reference)", hint: "bake it again with drover bake --force, or fetch it again from a host")
        }
        bootDigests[path] = expected  // under the lock already
      }
      verified.insert(manifest.key)
    }
  }

  /// The host path of volume `name` holding the local file `file`: uploaded when the host has no
  /// volume of that name and size, then read back and hashed; once per process and host.
  /// Content-addressed names make a second push a lookup.
  /// - Parameter sha256: the file's known digest (else computed here).
  public func pushed(_ file: String, as name: String, sha256: String?, to host: any ImageHost) throws -> String {
    let key = host.uri + "|" + name
    let expected = try sha256 ?? fileDigest(file)
    if lock.withLock({ onHost.contains(key) }), let v = try host.volume(pool: poolName, name: name) { return v.path }
    let transfer = lock.withLock { () -> NSLock in
      if let l = transfers[host.uri] { return l }
      let l = NSLock()
      transfers[host.uri] = l
      return l
    }
    return try transfer.withLock {
      if lock.withLock({ onHost.contains(key) }), let v = try host.volume(pool: poolName, name: name) { return v.path }
      // `<name>.verified` is written only after a copy was read back intact: a volume without
      // it is an interrupted upload (sent again); one with it that no longer matches was
      // changed on the host, and is refused.
      if let v = try host.volume(pool: poolName, name: name) {
        if try host.volume(pool: poolName, name: PoolVolumeNames.verifiedMark(of: name)) != nil {
          let back = try host.digest(pool: poolName, name: name)
          guard back == expected else {
            throw Diagnostic.error(
              "image.tampered",
              "the copy of \(name) on \(host.uri) does not match this machine's (sha256 \(back.prefix(16))…, expected \(expected.prefix(16))…): it changed on the host after it was verified",
              subject: name, hint: "no node uses it; if the change is not an attack, delete it (virsh vol-delete --pool \(poolName) \(name)) and run again")
          }
          lock.withLock { _ = onHost.insert(key) }
          return v.path
        }
        try host.deleteVolume(pool: poolName, name: name)
      }
      let sent = try host.upload(file: file, pool: poolName, name: name)
      guard sent == expected else {
        throw Diagnostic.error("image.push", "\(file) changed while it was sent to \(host.uri)", subject: name, hint: "run the command again")
      }
      let back = try host.digest(pool: poolName, name: name)
      guard back == expected else {
        try? host.deleteVolume(pool: poolName, name: name)
        throw Diagnostic.error(
          "image.tampered", "the copy of \(name) on \(host.uri) does not match what was sent (sha256 \(back.prefix(16))…, sent \(expected.prefix(16))…)",
          subject: name, hint: "check the host's storage; the copy was deleted and no node uses it")
      }
      try host.markVerified(pool: poolName, name: name)
      lock.withLock { _ = onHost.insert(key) }
      guard let v = try host.volume(pool: poolName, name: name) else {
        throw Diagnostic.error("image.push", "\(name) vanished from \(host.uri) after it was sent", subject: name)
      }
      return v.path
    }
  }
}
