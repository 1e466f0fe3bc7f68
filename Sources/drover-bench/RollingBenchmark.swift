import Foundation

enum RollingBenchmark {
  static func run(drover: String, repo: String) throws -> [String] { ["not yet"] }
}
