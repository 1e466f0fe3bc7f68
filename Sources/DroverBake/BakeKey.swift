import DroverBasics
import DroverModel
import Foundation

/// The digest of everything that can change a bake's output.
///
/// Covers the canonical recipe (as values: YAML formatting and comments do not count), the bytes
/// of every referenced file (files, kernel, initrd, busybox, base file), the base image's key, the
/// tool versions and the boot init script. Same key → same image: no rebuild.
public struct BakeKey: Sendable {
  public var key: String
  public var inputs: [String: String]
  public var tools: [String: String]

  public static func compute(
    recipe: ImageRecipe, recipeDirectory: String, baseKey: String?, tools: [String: String], digests: FileDigestCache,
    machineKernel: String = MachineSettings.defaultKernel, layerKey: String? = nil
  ) throws -> BakeKey {
    var inputs: [String: String] = [:]
    for file in recipe.files {
      inputs["file:" + file.source] = try digests.digest(of: resolve(file.source, in: recipeDirectory))
    }
    if let kernel = recipe.kernel {
      inputs["kernel"] = try digests.digest(of: resolve(kernel, in: recipeDirectory))
    } else {
      // The machine's kernel: a kernel upgrade (or another configured one) is a new image, whose
      // manifest names the kernel and initramfs that exist now.
      inputs["kernel"] = try digests.digest(of: machineKernel)
      inputs["kernel-path"] = machineKernel
    }
    if let initrd = recipe.initrd { inputs["initrd"] = try digests.digest(of: resolve(initrd, in: recipeDirectory)) }
    switch recipe.base {
    case .rootfs: inputs["busybox"] = try digests.digest(of: BootInitramfs.busybox)
    case .file(let path, _): inputs["base-file"] = try digests.digest(of: resolve(path, in: recipeDirectory))
    case .image: inputs["base-image"] = baseKey ?? ""
    // The package layer's key covers the packages, the machine's apt sources and lists, and
    // mmdebstrap's version (see `DebianLayer.key`).
    case .debian: inputs["debian-layer"] = layerKey ?? ""
    }
    inputs["boot-init"] = ContentDigest.of(BootInitramfs.initScript).hex
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var material = Data()
    material += (try? encoder.encode(recipe)) ?? Data()
    material += (try? encoder.encode(inputs)) ?? Data()
    material += (try? encoder.encode(tools)) ?? Data()
    return BakeKey(key: ContentDigest.of(material).hex, inputs: inputs, tools: tools)
  }

  /// A recipe path: absolute, or relative to the recipe's folder.
  public static func resolve(_ path: String, in directory: String) -> String {
    path.hasPrefix("/") ? path : directory + "/" + path
  }
}
