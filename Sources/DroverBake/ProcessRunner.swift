import DroverBasics
import Foundation

/// Runs a tool (qemu-img, mkfs.ext4, cpio…) with a deadline and captures its output.
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
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch {
      throw Diagnostic.error("bake.tool", "cannot run \(argv[0]): \(error)", hint: "run scripts/setup to install the tools")
    }
    let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    timer.cancel()
    let result = Output(
      status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    if process.terminationReason == .uncaughtSignal {
      throw Diagnostic.error("bake.tool", "\(argv.joined(separator: " ")) was stopped after \(Int(timeout))s")
    }
    if result.status != 0 {
      throw Diagnostic.error(
        "bake.tool", "\(argv.joined(separator: " ")) failed (exit \(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    return result
  }
}
