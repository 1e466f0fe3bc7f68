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
  private var verified: Set<String> = []
  private let lock = NSLock()

  public init(catalogue: ImageCatalogue, poolName: String, consoleDirectory: String) {
    self.catalogue = catalogue
    self.poolName = poolName
    self.consoleDirectory = consoleDirectory
  }

  /// The overlay volume name of a node generation.
  public static func overlayName(_ node: String, generation: Int) -> String { "node-\(node)-g\(generation).qcow2" }

  public func prepare(_ node: NodeDefinition, host: any ImageHost) throws -> NodeDefinition {
    let o = node.ownership
    let manifest = catalogue.image(forKey: o.digest) ?? ImageRef(parsing: o.image).flatMap(catalogue.image(for:))
    guard let manifest else {
      // libvirt's test driver cannot boot anything: its nodes stay diskless.
      if host.uri.hasPrefix("test") { return node }
      throw Diagnostic.error(
        "image.missing", "image \(o.image) has not been baked", subject: "node \(o.node) on \(host.uri)",
        hint: "run: drover bake  (recipes in images/)")
    }
    if !host.uri.hasPrefix("test") {
      try lock.withLock {
        if !verified.contains(manifest.key) {
          try ImageVerifier.verify(manifest, in: catalogue)
          verified.insert(manifest.key)
        }
      }
    }
    var result = node
    result.ownership.digest = manifest.key
    guard !host.uri.hasPrefix("test") else { return result }
    try host.ensureImagePool(name: poolName, directory: catalogue.directory)
    try FileManager.default.createDirectory(atPath: consoleDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    let volume = Self.overlayName(o.node, generation: o.generation)
    _ = try host.createOverlay(
      pool: poolName, name: volume, backingPath: catalogue.path(of: manifest),
      capacityBytes: max(o.diskMiB << 20, manifest.recipe.size.bytes))
    result.ownership.disk = "\(poolName)/\(volume)"
    result.boot = NodeBoot(
      storagePool: poolName, volume: volume, kernel: manifest.kernel, initrd: manifest.initrd, cmdline: manifest.cmdline,
      consoleLog: "\(consoleDirectory)/\(o.node).log")
    return result
  }
}
