import DroverBake
import DroverModel
import DroverPlan

/// The lines `plan` and `apply` print for the images a plan sends to hosts first.
enum TransferView {
  static func transfers(_ plan: Plan, observed: ObservedWorld, images: ImagePaths) -> [ImageTransfer] {
    let remote = Set(images.project.hosts.filter { $0.imageDir != nil }.map(\.uri))
    guard !remote.isEmpty else { return [] }
    let baked = Dictionary(
      images.catalogue.manifests.map { ($0.key, TransferableImage(reference: $0.reference.description, artifact: $0.artifact, bytes: $0.sizeBytes)) }
    ) { a, _ in a }
    return ImageTransfers.needed(plan, remoteHosts: remote, images: baked, observed: observed)
  }

  static func human(_ transfers: [ImageTransfer]) -> String? {
    guard !transfers.isEmpty else { return nil }
    let total = transfers.reduce(UInt64(0)) { $0 + $1.bytes }
    var lines = ["Images sent first (then read back and verified on the host):"]
    for t in transfers { lines.append("  \(t.image) (\(ByteSize(bytes: t.bytes / 1024 * 1024))) → \(t.host)") }
    lines.append("Transfers: \(transfers.count), \(ByteSize(bytes: total / 1024 * 1024)) in all (plus each image's kernel and initrd if missing).")
    return lines.joined(separator: "\n")
  }
}
