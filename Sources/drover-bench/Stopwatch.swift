import Foundation

/// Wall-clock timing of repeated runs, reported as medians.
enum Stopwatch {
  static func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  }

  static func median(runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<runs { samples.append(try seconds(body)) }
    samples.sort()
    return samples[samples.count / 2]
  }

  static func format(_ s: Double) -> String {
    s >= 1 ? String(format: "%.2f s", s) : s >= 0.001 ? String(format: "%.1f ms", s * 1000) : String(format: "%.0f µs", s * 1e6)
  }
}

/// Runs a command and returns its exit status (output discarded).
@discardableResult
func runProcess(_ path: String, _ arguments: [String], cwd: String? = nil) throws -> Int32 {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: path)
  p.arguments = arguments
  if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
  p.standardOutput = FileHandle.nullDevice
  p.standardError = FileHandle.nullDevice
  try p.run()
  p.waitUntilExit()
  return p.terminationStatus
}
