import ArgumentParser
import DroverBake
import Foundation

/// Where golden images, overlays and console logs live.
struct ImageOptions: ParsableArguments {
  @Option(help: "Folder of Drover's image storage pool (golden images and node overlays).")
  var imageDir: String = ProcessInfo.processInfo.environment["DROVER_IMAGE_DIR"] ?? "/var/lib/drover/images"

  @Option(help: "Name of Drover's libvirt storage pool for images.")
  var imagePool: String = ProcessInfo.processInfo.environment["DROVER_IMAGE_POOL"] ?? "drover-images"

  @Option(help: "Folder for the nodes' serial console logs (read by console health checks).")
  var consoleDir: String = ProcessInfo.processInfo.environment["DROVER_CONSOLE_DIR"] ?? "/var/lib/drover/console"

  var catalogue: ImageCatalogue { ImageCatalogue(directory: imageDir) }

  func nodeImages() -> NodeImages {
    NodeImages(catalogue: catalogue, poolName: imagePool, consoleDirectory: consoleDir)
  }
}
