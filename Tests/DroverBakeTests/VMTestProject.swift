import Foundation
import Libvirt

/// A throw-away project for real-VM system tests on `qemu:///system`, run through the built
/// binary as a user would: its own project name, image folder and pool, console folder and
/// machine configuration, all removed by `removeAll` (after the test has scaled its pools to 0).
class VMTestProject {
  let id: String
  let dir: URL
  let environment: [String: String]
  let project: String
  let imagePool: String
  let imageDir: String
  let consoleDir: String
  let binary: String

  /// - Parameters:
  ///   - prefix: names this test's folders, project and pool (`day2`, `deb`).
  ///   - id: makes them unique to this run.
  init(_ prefix: String, id: String = "\(getpid() % 100_000)-\(UInt16.random(in: 0...UInt16.max))") throws {
    self.id = id
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    binary = repo.appendingPathComponent(".build/debug/drover").path
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-\(prefix)-\(id)")
    project = "\(prefix)-\(id)"
    imagePool = "drover-\(prefix)-\(id)"
    imageDir = "/var/lib/drover/\(prefix)-images-\(id)"
    consoleDir = "/var/lib/drover/\(prefix)-console-\(id)"
    environment = [
      "DROVER_PROJECT": project, "DROVER_IMAGE_DIR": imageDir, "DROVER_IMAGE_POOL": imagePool, "DROVER_CONSOLE_DIR": consoleDir, "NO_COLOR": "1",
      "DROVER_CONFIG": dir.appendingPathComponent("machine-config.yaml").path,
    ]
    for sub in ["pools", "images/files"] {
      try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
  }

  @discardableResult
  func run(_ args: [String]) throws -> (status: Int32, output: String) {
    try DroverProcess.run(binary, args, in: dir, environment: environment.mapValues { $0 })
  }

  /// In another folder (a copy of a shipped example), with this test's environment.
  @discardableResult
  func run(_ args: [String], in folder: URL) throws -> (status: Int32, output: String) {
    try DroverProcess.run(binary, args, in: folder, environment: environment.mapValues { $0 })
  }

  /// Runs drover on a terminal (a pseudo-terminal from script(1)) and types `answer` at its
  /// prompt, as a person at a shell does: for commands that ask before they act.
  func runAtTerminal(_ args: [String], answer: String, in folder: URL? = nil) throws -> (status: Int32, output: String) {
    let command = ([binary] + args).map { "'\($0)'" }.joined(separator: " ")
    return try DroverProcess.run(
      "/bin/sh", ["-c", "printf '%s\\n' \"$ANSWER\" | script -qefc \"$COMMAND\" /dev/null"], in: folder ?? dir,
      environment: environment.mapValues { $0 }.merging(["ANSWER": answer, "COMMAND": command]) { $1 })
  }

  /// Removes the image pool and every folder of the project (its nodes must be gone already).
  func removeAll(_ connection: Connection) {
    if let p = try? connection.storagePool(named: imagePool) {
      try? p.stop()
      try? p.undefine()
    }
    try? FileManager.default.removeItem(atPath: imageDir)
    try? FileManager.default.removeItem(atPath: consoleDir)
    try? FileManager.default.removeItem(at: dir)
  }
}
