import Foundation

/// Runs the built `drover` binary (or a script driving it) as a user would, for the system tests.
enum DroverProcess {
  /// Output is standard output and error together. `environment` values of nil remove a variable.
  static func run(_ binary: String, _ args: [String], in dir: URL? = nil, environment: [String: String?]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = args
    if let dir { process.currentDirectoryURL = dir }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    try process.run()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
  }
}
