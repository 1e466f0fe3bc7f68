import DroverBasics
import DroverModel
import Foundation

/// Which images garbage collection must keep.
public enum ImageGC {
  /// Keeps: each pool's current image, each pool's previous image (rollback needs it), every
  /// image a node records, and every image an overlay in the pool folder is backed by.
  public static func keep(catalogue: ImageCatalogue, pools: [PoolSpec], inUse: Set<String>, overlayBackings: Set<String>) -> Set<String> {
    var keep = inUse
    for m in catalogue.manifests where overlayBackings.contains(m.artifact) { keep.insert(m.key) }
    for pool in pools {
      guard let current = catalogue.image(for: pool.image) else { continue }
      keep.insert(current.key)
      let older = catalogue.manifests.filter { $0.name == current.name && $0.key != current.key && $0.created <= current.created }
      if let previous = older.max(by: { $0.created < $1.created }) { keep.insert(previous.key) }
    }
    return keep
  }

  /// Artifact names that overlays (`drover.<project>.<pool>-<i>.g<n>.qcow2`, and the older
  /// `node-*.qcow2`) in `directory` are backed by, from their qcow2 headers (the backing file name
  /// is stored in the image itself), of any project.
  public static func overlayBackings(in directory: String) -> Set<String> {
    var result: Set<String> = []
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    where (name.hasPrefix("node-") && name.hasSuffix(".qcow2")) || OverlayName(volume: name)?.kind == .disk {
      guard let handle = FileHandle(forReadingAtPath: directory + "/" + name) else { continue }
      defer { try? handle.close() }
      guard let header = try? handle.read(upToCount: 4096), header.count >= 20 else { continue }
      let bytes = [UInt8](header)
      let offset = bytes[8..<16].reduce(0) { $0 << 8 | Int($1) }
      let length = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }
      guard offset > 0, length > 0, offset + length <= bytes.count else { continue }
      let backing = String(decoding: bytes[offset..<offset + length], as: UTF8.self)
      result.insert((backing as NSString).lastPathComponent)
    }
    return result
  }

  /// Boot files images brought or fetched into `directory` (`kernel-<12 hex>`,
  /// `boot-image-<12 hex>.img`, `boot-fetched-<12 hex>.cpio.gz`) that no manifest left there
  /// names: what goes after their images did. Pure; Drover's own initramfs (`boot-<release>-…`)
  /// is shared by every busybox image and never collected here.
  public static func unusedBootFiles(names: [String], remaining: [ImageManifest]) -> [String] {
    let named = Set(remaining.flatMap { [($0.kernel as NSString).lastPathComponent, ($0.initrd as NSString).lastPathComponent] })
    let collectable = { (name: String) in ImageNames.isFetchedKernel(name) || ImageNames.isImageInitrd(name) || ImageNames.isFetchedInitrd(name) }
    return names.filter { collectable($0) && !named.contains($0) }.sorted()
  }

  public static func delete(_ m: ImageManifest, in directory: String) {
    guard m.pathsStayInside(directory) else { return }  // never delete outside the image folder
    let base = (m.artifact as NSString).deletingPathExtension
    // Files only, by name in their folder: never a tree, never through a link.
    for name in [m.artifact, base + ".sha256", base + ".manifest.json"] { SafeFiles.removeFile(name, in: directory) }
    if !m.buildLog.isEmpty {
      SafeFiles.removeFile((m.buildLog as NSString).lastPathComponent, in: (m.buildLog as NSString).deletingLastPathComponent)
    }
  }
}

/// What `drover images gc --host` deletes from a host's pool. Pure.
///
/// Only what a record describes is ever deleted: an image is collected with its record, and a
/// kernel or initrd only when every record naming it goes. The same images are kept as locally
/// (each pool's current and previous image, every image a node records, every image an overlay
/// in that pool is backed by — of any project).
public enum HostImageGC {
  public struct Decision: Sendable, Equatable {
    /// The images collected, by reference.
    public var images: [String]
    /// Volume names to delete, in order: each image's mark and artifact, its unshared boot
    /// files, and its record last (a gc stopped midway leaves the record, so the next finishes).
    public var volumes: [String]
  }

  public static func decide(records: [HostImageRecord], volumes: Set<String>, pools: [PoolSpec], inUse: Set<String>, overlayBackings: Set<String>) -> Decision {
    let catalogue = ImageCatalogue(directory: "", manifests: records.map(\.manifest))
    let keep = ImageGC.keep(catalogue: catalogue, pools: pools, inUse: inUse, overlayBackings: overlayBackings)
    let kept = records.filter { keep.contains($0.manifest.key) }
    let gone = records.filter { !keep.contains($0.manifest.key) }.sorted { $0.volume < $1.volume }
    let keptBoot = Set(kept.flatMap { [$0.kernel.volume, $0.initrd.volume] })
    var order: [String] = [], seen: Set<String> = []
    func add(_ name: String) {
      for n in [PoolVolumeNames.verifiedMark(of: name), name] where volumes.contains(n) && seen.insert(n).inserted { order.append(n) }
    }
    for r in gone {
      add(r.manifest.artifact)
      for boot in [r.kernel.volume, r.initrd.volume] where !keptBoot.contains(boot) { add(boot) }
    }
    for r in gone { add(r.volume) }
    return Decision(images: gone.map { $0.manifest.reference }, volumes: order)
  }
}
