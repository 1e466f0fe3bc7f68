import Foundation

/// A throw-away Drover project for one scenario: `pools/`, and `images/` holding the minimal
/// `demo@v1` recipe the generated pools name (never baked: fleet scenarios run on the test driver).
struct ScratchProject {
  let path: String

  init(_ scenario: String) throws {
    path = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-\(scenario)-\(getpid())").path
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path + "/pools", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: path + "/images", withIntermediateDirectories: true)
    try "name: demo\nversion: v1\nbase: {rootfs: busybox}\n".write(toFile: path + "/images/demo.yaml", atomically: true, encoding: .utf8)
    // A fresh key and journal per run: the state folder is inside the scratch project.
    try "project: bench\nstate: {backend: local, dir: .drover}\n".write(toFile: path + "/drover.yaml", atomically: true, encoding: .utf8)
  }

  /// The project's one pool, `pools/p.yaml`.
  func writePool(name: String, host: String, replicas: Int) throws {
    try "name: \(name)\nhosts: [\(host)]\nreplicas: \(replicas)\nimage: demo@v1\n".write(
      toFile: path + "/pools/p.yaml", atomically: true, encoding: .utf8)
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}
