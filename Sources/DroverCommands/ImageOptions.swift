import ArgumentParser
import DroverBake
import DroverModel
import Foundation

/// Where golden images, overlays and console logs live.
struct ImageOptions: ParsableArguments {
  @Option(name: .customLong("image-dir"), help: "Folder of Drover's image storage pool (golden images and node overlays); default $DROVER_IMAGE_DIR, drover.yaml's image_dir, /var/lib/drover/images.")
  var imageDirFlag: String?

  @Option(name: .customLong("image-pool"), help: "Name of Drover's libvirt storage pool for images; default $DROVER_IMAGE_POOL, drover.yaml's image_pool, drover-images.")
  var imagePoolFlag: String?

  @Option(name: .customLong("console-dir"), help: "Folder for the nodes' serial console logs (read by console health checks); default $DROVER_CONSOLE_DIR, drover.yaml's console_dir, /var/lib/drover/console.")
  var consoleDirFlag: String?

  private var environment: [String: String] { ProcessInfo.processInfo.environment }
  /// The flag, then the environment, then drover.yaml, then the default.
  var imageDir: String {
    imageDirFlag ?? environment["DROVER_IMAGE_DIR"] ?? CurrentProject.path(CurrentProject.settings?.imageDir) ?? "/var/lib/drover/images"
  }
  var imagePool: String { imagePoolFlag ?? environment["DROVER_IMAGE_POOL"] ?? CurrentProject.settings?.imagePool ?? "drover-images" }
  var consoleDir: String {
    consoleDirFlag ?? environment["DROVER_CONSOLE_DIR"] ?? CurrentProject.path(CurrentProject.settings?.consoleDir) ?? "/var/lib/drover/console"
  }

  var catalogue: ImageCatalogue { ImageCatalogue(directory: imageDir) }

  func nodeImages() -> NodeImages {
    NodeImages(
      catalogue: catalogue, poolName: imagePool, consoleDirectory: consoleDir, machine: CurrentMachine.settings,
      hostPaths: HostPathPolicy(project: CurrentProject.absoluteDir, allowed: CurrentMachine.settings.allowedRoots),
      hostDirectories: Dictionary(
        (CurrentProject.settings?.hosts ?? []).compactMap { entry in entry.imageDir.map { (entry.uri, $0) } }, uniquingKeysWith: { a, _ in a }))
  }
}
