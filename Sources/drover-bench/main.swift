import Foundation

/// `drover-bench [scenario…]`: Drover's benchmarks, each printing medians and ratios against
/// baselines measured in the same run. Build in release mode first:
/// `swift build -c release && .build/release/drover-bench validate`.
let arguments = Array(CommandLine.arguments.dropFirst())
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let drover = binDir + "/drover"
/// The repository (for the example recipes): the working directory or DROVER_REPO.
let repo = ProcessInfo.processInfo.environment["DROVER_REPO"] ?? FileManager.default.currentDirectoryPath
let runs = Int(ProcessInfo.processInfo.environment["DROVER_BENCH_RUNS"] ?? "") ?? 5
let scenarios = arguments.isEmpty ? ["validate", "fleet", "bake"] : arguments

print("drover-bench: median of \(runs) runs, binary \(drover)")
for scenario in scenarios {
  print("\n== \(scenario)")
  do {
    switch scenario {
    case "validate": try ValidateBenchmark.run(drover: drover, runs: runs).forEach { print($0) }
    case "bake": try BakeBenchmark.run(drover: drover, runs: runs, repo: repo).forEach { print($0) }
    case "fleet":
      let sizes = (ProcessInfo.processInfo.environment["DROVER_BENCH_SIZES"] ?? "100,1000,5000").split(separator: ",").compactMap { Int($0) }
      try FleetBenchmark.run(drover: drover, runs: runs, sizes: sizes, repo: repo).forEach { print($0) }
    default: print("unknown scenario '\(scenario)'; known: validate, bake, fleet")
    }
  } catch {
    print("error: \(error)")
  }
}
