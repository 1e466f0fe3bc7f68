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
  // Resolved against the loaded project: `resolved(_:)` (LoadedProject.swift).
}
