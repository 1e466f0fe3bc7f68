import DroverBasics
import DroverEngine
import Foundation
import Libvirt

/// Runs the built `drover` binary in a scratch project, as a user would.
///
/// Uses `test+unix:///default` (the test driver inside libvirtd). Its state lives only while a
/// client is connected, so the harness holds a connection for the test's duration; every test
/// uses its own project name and pool names, so parallel tests never see each other's nodes.
final class CLIHarness {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let binary = repo.appendingPathComponent(".build/debug/drover").path
  static let uri = "test+unix:///default"

  let dir: URL
  let project: String
  let holder: Connection

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-cli-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir.appendingPathComponent("pools"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
    try "name: demo\nversion: v1\nbase: {rootfs: busybox}\n".write(to: dir.appendingPathComponent("images/v1.yaml"), atomically: true, encoding: .utf8)
    try "name: demo\nversion: v2\nbase: {rootfs: busybox}\n".write(to: dir.appendingPathComponent("images/v2.yaml"), atomically: true, encoding: .utf8)
    project = "cli\(UInt32.random(in: 0..<UInt32.max))"
    // The project file names the project; its state (key, locks, journal) stays in the folder.
    try "project: \(project)\nstate: {backend: local, dir: .drover}\n".write(to: dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    holder = try Connection.open(Self.uri)
  }

  deinit { try? FileManager.default.removeItem(at: dir) }

  static func unique(_ prefix: String) -> String { "\(prefix)\(UInt32.random(in: 0..<100_000))" }

  /// The project's key as its state folder holds it (the journal is sealed and checked with it).
  func keyring() throws -> Keyring {
    Keyring(project: project, key: try ProjectKeyStore.load(project: project, stateDirectory: dir.appendingPathComponent(".drover").path, environment: [:]))
  }

  func writePool(_ name: String, replicas: Int, image: String = "demo@v1", extra: String = "") throws {
    try "name: \(name)\nhosts: [\(Self.uri)]\nreplicas: \(replicas)\nimage: \(image)\n\(extra)"
      .write(to: dir.appendingPathComponent("pools/\(name).yaml"), atomically: true, encoding: .utf8)
  }

  struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  @discardableResult
  /// - Parameter openFiles: a limit on open descriptors (`ulimit -n`) for the run.
  func run(_ arguments: [String], stdin: String? = nil, environment extra: [String: String] = [:], openFiles: Int? = nil) throws -> Run {
    let process = Process()
    if let openFiles {
      process.executableURL = URL(fileURLWithPath: "/bin/sh")
      process.arguments = ["-c", "ulimit -n \(openFiles) && exec \"$0\" \"$@\"", Self.binary] + arguments
    } else {
      process.executableURL = URL(fileURLWithPath: Self.binary)
      process.arguments = arguments
    }
    process.currentDirectoryURL = dir
    var environment = ProcessInfo.processInfo.environment
    environment["DROVER_PROJECT"] = nil
    environment["DROVER_PROJECT_KEY"] = nil
    environment["NO_COLOR"] = "1"
    // The machine's configuration is the test's own (none unless a test writes one), never /etc's.
    environment["DROVER_CONFIG"] = dir.appendingPathComponent("machine-config.yaml").path
    environment["DROVER_ALLOW_PATHS"] = nil
    process.environment = environment.merging(extra) { $1 }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    // A child that exits before reading its input must not kill the test process with SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    if let stdin { try? input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    // Both pipes are drained at once: reading one to its end first deadlocks once the child
    // fills the other's buffer (64 KiB of diagnostics is enough).
    nonisolated(unsafe) var e = Data()
    let errDone = DispatchSemaphore(value: 0)
    let reader = Thread {
      e = err.fileHandleForReading.readDataToEndOfFile()
      errDone.signal()
    }
    reader.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
  }

  /// `drover ARGS` started in the background in this folder (as `run` sets it up), its output
  /// discarded or sent to `output`: for a process a test acts on while it runs.
  /// `wrapper` runs it through another program first (`ip netns exec NS`).
  func start(_ arguments: [String], environment extra: [String: String] = [:], output: Pipe? = nil, wrapper: [String] = []) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: wrapper.first ?? Self.binary)
    p.arguments = wrapper.isEmpty ? arguments : Array(wrapper.dropFirst()) + [Self.binary] + arguments
    p.currentDirectoryURL = dir
    var environment = ProcessInfo.processInfo.environment
    environment["DROVER_PROJECT"] = nil
    environment["NO_COLOR"] = "1"
    environment["DROVER_CONFIG"] = dir.appendingPathComponent("machine-config.yaml").path
    p.environment = environment.merging(extra) { $1 }
    p.standardOutput = output ?? FileHandle.nullDevice
    p.standardError = output ?? FileHandle.nullDevice
    try p.run()
    return p
  }

  func json(_ text: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
  }
}
