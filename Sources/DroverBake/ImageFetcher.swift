import DroverBasics
import DroverModel
import Foundation

/// Brings images back from a host's pool into this machine's image folder (`drover images
/// fetch`), so a machine that never baked them — a throw-away CI runner — can plan, apply and
/// roll out with them.
///
/// Only what the host's record describes is fetched, and every file is checked against the
/// record's digest while it arrives, in a staging folder; the image appears by one rename and
/// its manifest is written last, exactly as a bake publishes. A kernel whose digest equals the
/// machine's own kernel is not fetched: the machine's is used.
public final class ImageFetcher: @unchecked Sendable {
  let directory: String
  let poolName: String
  let machine: MachineSettings
  let lockTimeout: Double

  public init(imageDirectory: String, poolName: String, machine: MachineSettings, lockTimeout: Double = 600) {
    self.directory = imageDirectory
    self.poolName = poolName
    self.machine = machine
    self.lockTimeout = lockTimeout
  }

  public enum Outcome: Sendable, Equatable {
    /// This machine already holds the image, verified.
    case present
    /// Fetched: bytes received for the image and any boot file it lacked.
    case fetched(bytes: UInt64)
  }

  /// Fetches one image and the boot files it lacks, verified against `record`.
  public func fetch(_ record: HostImageRecord, from host: any ImageHost) throws -> Outcome {
    let m = record.manifest
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    if let have = ImageCatalogue(directory: directory).image(forKey: m.key) {
      try ImageVerifier.verify(have, in: ImageCatalogue(directory: directory))
      return .present
    }
    // One writer of an image at a time: a bake or another fetch of it waits, finitely.
    let lock = try BakeLock.take(m.reference, imageDirectory: directory, timeout: lockTimeout) {}
    defer { withExtendedLifetime(lock) {} }
    if ImageCatalogue(directory: directory).image(forKey: m.key) != nil { return .present }
    // `<key>-<pid>`: a live bake's sweep leaves this run's files alone (see Baker.removeLeftovers).
    let stageEntry = "\(m.key.prefix(12))-\(getpid())"
    let stage = try SafeFiles.directory(stageEntry, in: SafeFiles.directory(".staging", in: directory), fresh: true)
    defer { try? SafeFiles.remove(stageEntry, inFolder: ".staging", of: directory) }

    var received: UInt64 = 0
    var manifest = m
    manifest.buildLog = ""
    // Boot files first: the image is published only once everything it boots with is here.
    if try machineKernelDigest() == record.kernel.sha256 {
      manifest.kernel = machine.kernel
    } else {
      manifest.kernel = directory + "/" + record.kernel.volume  // `kernel-<12 hex>`: Drover's own name
      received += try fetchFile(record.kernel.volume, sha256: record.kernel.sha256, as: record.kernel.volume, stage: stage, from: host)
    }
    let initrd = ImageNames.fetchedInitrd(sha256: record.initrd.sha256)
    manifest.initrd = directory + "/" + initrd
    received += try fetchFile(record.initrd.volume, sha256: record.initrd.sha256, as: initrd, stage: stage, from: host)
    received += try fetchFile(m.artifact, sha256: m.artifactSHA256, as: m.artifact, stage: stage, from: host, check: { staged in
      try ImageVerifier.checkFlat(manifest, path: staged)
    })
    try manifest.writeBesideArtifact(in: directory)
    return .fetched(bytes: received)
  }

  /// The machine kernel's digest (nil when it cannot be read).
  func machineKernelDigest() throws -> String? { try? FileDigestCache.sha256(ofFile: machine.kernel) }

  /// Fetches volume `volume` into the image folder as `name`, unless a file of that name with
  /// that digest is already there; through the staging folder, so a partial file is never seen.
  /// - Returns: the bytes received.
  /// - Parameter check: a last check of the staged file before it is moved in.
  func fetchFile(
    _ volume: String, sha256: String, as name: String, stage: String, from host: any ImageHost, check: (String) throws -> Void = { _ in }
  ) throws -> UInt64 {
    let target = directory + "/" + name
    if (try? FileDigestCache.sha256(ofFile: target)) == sha256 { return 0 }
    let staged = stage + "/" + name
    let fd = open(staged, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw Diagnostic.error("io.path", "cannot create \(staged): \(String(cString: strerror(errno)))", subject: staged)
    }
    let got: (bytes: UInt64, sha256: String)
    do {
      got = try host.download(pool: poolName, name: volume, into: fd)
      guard fsync(fd) == 0 else { throw Diagnostic.error("io.write", "cannot write \(staged): \(String(cString: strerror(errno)))", subject: staged) }
      close(fd)
    } catch {
      close(fd)
      throw error
    }
    guard got.sha256 == sha256 else {
      throw Diagnostic.error(
        "image.tampered",
        "\(volume) on \(host.uri) does not match its record (sha256 \(got.sha256.prefix(16))…, the record says \(sha256.prefix(16))…)",
        subject: volume, hint: "nothing was added here; push the image again from a machine that has it, or bake it")
    }
    try check(staged)
    guard rename(staged, target) == 0 else {
      throw Diagnostic.error("io.write", "cannot move \(name) into \(directory): \(String(cString: strerror(errno)))", subject: target)
    }
    return got.bytes
  }
}
