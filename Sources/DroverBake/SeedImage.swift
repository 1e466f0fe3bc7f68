import DroverBasics
import DroverModel
import Foundation

/// A cloud-init NoCloud seed as an ISO 9660 image labelled `cidata` (with Rock Ridge and Joliet
/// names, so `user-data` and `meta-data` keep their spelling), made by `genisoimage` from two
/// or three files in a private temporary folder: no guest, no mounts, no loop devices.
enum SeedImage {
  static let tool = "/usr/bin/genisoimage"

  static func build(_ files: CloudInitSeed.Files, runner: ProcessRunner) throws -> [UInt8] {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("drover-seed-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    guard mkdir(folder, 0o700) == 0 else {
      throw Diagnostic.error("seed.io", "cannot make a folder for a cloud-init seed in \(FileManager.default.temporaryDirectory.path): \(String(cString: strerror(errno)))")
    }
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try files.metaData.write(toFile: folder + "/meta-data", atomically: false, encoding: .utf8)
    try files.userData.write(toFile: folder + "/user-data", atomically: false, encoding: .utf8)
    var inputs = [folder + "/user-data", folder + "/meta-data"]
    if let network = files.networkConfig {
      try network.write(toFile: folder + "/network-config", atomically: false, encoding: .utf8)
      inputs.append(folder + "/network-config")
    }
    let iso = folder + "/seed.iso"
    try runner.run([tool, "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "-input-charset", "utf-8"] + inputs, timeout: 60)
    guard let data = FileManager.default.contents(atPath: iso), !data.isEmpty else {
      throw Diagnostic.error("seed.io", "genisoimage made no seed image")
    }
    return [UInt8](data)
  }
}
