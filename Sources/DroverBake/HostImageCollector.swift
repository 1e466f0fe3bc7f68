import DroverBasics
import DroverModel
import Foundation

/// `drover images gc --host`: reads a host's pool, asks `HostImageGC` what goes, deletes that.
public enum HostImageCollector {
  public struct Outcome: Sendable {
    public var decision: HostImageGC.Decision
    /// Records that were not read as images (never deleted).
    public var refused: [Diagnostic]
    /// How many recorded images stay.
    public var kept: Int
  }

  /// - Parameter inUse: image keys recorded by the project's nodes (every host read).
  public static func collect(on host: any ImageHost, pool: String, pools: [PoolSpec], inUse: Set<String>, dryRun: Bool) throws -> Outcome {
    let read = try HostImageRecord.readAll(on: host, pool: pool)
    // Whatever else is in the pool may be an overlay of anyone's (another project's, a person's):
    // the images they are backed by stay.
    var backings: Set<String> = []
    for name in read.volumes.sorted() where !isDroversOwn(name) {
      if let path = try host.backingPath(pool: pool, name: name) { backings.insert((path as NSString).lastPathComponent) }
    }
    let decision = HostImageGC.decide(records: read.records, volumes: read.volumes, pools: pools, inUse: inUse, overlayBackings: backings)
    if !dryRun { for name in decision.volumes { try host.deleteVolume(pool: pool, name: name) } }
    return Outcome(decision: decision, refused: read.refused, kept: read.records.count - decision.images.count)
  }

  /// Names of the files Drover keeps in a host's pool that are never overlays.
  static func isDroversOwn(_ name: String) -> Bool {
    let base = name.hasSuffix(".verified") ? String(name.dropLast(".verified".count)) : name
    return ImageNames.isArtifact(base) || base.hasSuffix(".image.json") || base.hasPrefix("kernel-") || base.hasPrefix("initrd-")
      || (base.hasPrefix("console-") && base.hasSuffix(".log")) || base == ".drover-pool"
  }
}
