import DroverBasics
import Foundation

/// Runs a tool (qemu-img, mkfs.ext4, cpio…) with a deadline and captures its output, through
/// `ChildProcess.run` (files, not pipes: stdout and stderr can never block each other).
///
/// The only way this module starts processes, so a bake's side effects are all visible here.
public struct ProcessRunner: Sendable {
  public init() {}

  public struct Output: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
  }

  /// - Throws: a `bake.tool` diagnostic when the tool is missing, fails, or runs past `timeout`.
  @discardableResult
  public func run(_ argv: [String], timeout: Double = 300, cwd: String? = nil) throws -> Output {
    let finished: ChildProcess.Finished
    switch ChildProcess.run(argv, directory: cwd, separateErrors: true, timeout: timeout) {
    case .success(let f): finished = f
    case .failure(let error):
      throw Diagnostic.error(
        "bake.tool", "cannot run \(argv[0]): \(String(cString: strerror(error.code.rawValue)))", hint: "run scripts/setup to install the tools")
    }
    if finished.timedOut {
      throw Diagnostic.error("bake.tool", "\(argv.joined(separator: " ")) was stopped after \(Int(timeout))s")
    }
    let result = Output(status: finished.status, stdout: finished.output, stderr: finished.errors)
    if result.status != 0 {
      throw Diagnostic.error(
        "bake.tool", "\(argv.joined(separator: " ")) failed (exit \(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    return result
  }
}
