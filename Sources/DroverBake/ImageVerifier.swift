import DroverBasics
import Foundation

/// Checks an image file against its manifest before anything boots from it.
public enum ImageVerifier {
  /// - Throws: `image.tampered` when the file's sha256 differs from the manifest's.
  public static func verify(_ manifest: ImageManifest, in catalogue: ImageCatalogue) throws {
    let path = catalogue.path(of: manifest)
    guard FileManager.default.fileExists(atPath: path) else {
      throw Diagnostic.error(
        "image.missing", "image file \(path) of \(manifest.reference) is missing", subject: "image \(manifest.reference)",
        hint: "bake it again: drover bake")
    }
    let actual = try FileDigestCache.sha256(ofFile: path)
    guard actual == manifest.artifactSHA256 else {
      throw Diagnostic.error(
        "image.tampered",
        "image \(manifest.reference) (\(manifest.artifact)) does not match its checksum: sha256 is \(actual.prefix(16))…, the manifest says \(manifest.artifactSHA256.prefix(16))…",
        subject: "image \(manifest.reference)", hint: "the file was modified after it was baked; delete it and run drover bake")
    }
    try checkFlat(manifest, path: path)
  }

  /// Drover's images are flat qcow2 files: one with a backing file (its checksum and manifest
  /// planted together, or a host's copy fetched back) would hand every overlay a host file to read.
  public static func checkFlat(_ manifest: ImageManifest, path: String) throws {
    let info = try ProcessRunner().run(["/usr/bin/qemu-img", "info", "-f", "qcow2", "--output=json", path], timeout: 30).stdout
    let json = (try? JSONSerialization.jsonObject(with: Data(info.utf8))) as? [String: Any] ?? [:]
    if json["backing-filename"] != nil || json["format"] as? String != "qcow2" {
      throw Diagnostic.error(
        "image.tampered", "image \(manifest.reference) (\(manifest.artifact)) is not a flat qcow2 image: Drover never bakes one with a backing file",
        subject: "image \(manifest.reference)", hint: "delete it and run drover bake")
    }
  }
}
