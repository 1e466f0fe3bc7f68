import DroverModel

/// An image a plan will send to a host before a node there can boot from it.
public struct ImageTransfer: Sendable, Hashable {
  public var host: String
  public var image: String
  public var artifact: String
  public var bytes: UInt64

  public init(host: String, image: String, artifact: String, bytes: UInt64) {
    self.host = host
    self.image = image
    self.artifact = artifact
    self.bytes = bytes
  }
}

/// A baked image, as transfers need it: its reference, file name and size.
public struct TransferableImage: Sendable, Hashable {
  public var reference: String
  public var artifact: String
  public var bytes: UInt64

  public init(reference: String, artifact: String, bytes: UInt64) {
    self.reference = reference
    self.artifact = artifact
    self.bytes = bytes
  }
}

/// Which images a plan sends where: pure, over the plan, the hosts that keep their own image
/// folder, the baked images by key and what each host's pool holds.
///
/// Why in the plan: a transfer is real work (a gigabyte image over a WAN takes minutes), so the
/// person approving an apply sees it, with its size, before it starts.
public enum ImageTransfers {
  public static func needed(
    _ plan: Plan, remoteHosts: Set<String>, images: [String: TransferableImage], observed: ObservedWorld
  ) -> [ImageTransfer] {
    var result: Set<ImageTransfer> = []
    for action in plan.actions where (action.kind == .create || action.kind == .replace) && remoteHosts.contains(action.host) {
      guard let key = action.after?.ownership.digest, let image = images[key] else { continue }
      let held = Set(observed.hosts[action.host]?.poolVolumes ?? [])
      // Present only once read back and marked: a copy without its mark is sent again.
      if held.contains(image.artifact) && held.contains(PoolVolumeNames.verifiedMark(of: image.artifact)) { continue }
      result.insert(ImageTransfer(host: action.host, image: image.reference, artifact: image.artifact, bytes: image.bytes))
    }
    return result.sorted { ($0.host, $0.image) < ($1.host, $1.image) }
  }
}
