import DroverBasics
import Foundation

/// The lock one bake of an image (`name@version`) holds in the image folder, so two bakes of it
/// never build at once: the second waits, then finds the first's image in the cache.
///
/// A `NamedLock` in `<image dir>/.locks/bakes` (a real folder, never a planted link); released by
/// the kernel when the baking process exits, even by `kill -9`.
enum BakeLock {
  static func take(_ image: String, imageDirectory: String, timeout: Double, onWait: () -> Void) throws -> NamedLock {
    let file = try SafeFiles.directory(".locks", in: imageDirectory) + "/bakes"
    if let lock = try NamedLock.acquire(image, file: file, timeout: 0) { return lock }
    onWait()
    if let lock = try NamedLock.acquire(image, file: file, timeout: timeout) { return lock }
    throw Diagnostic.error(
      "bake.locked", "another bake of \(image) in \(imageDirectory) has held its lock for \(Int(timeout)) s", subject: "image \(image)",
      hint: "wait for it to finish (its image then answers from the cache), or raise --lock-timeout")
  }
}
