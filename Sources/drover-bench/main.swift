import Foundation

/// `drover-bench [scenario…]`: Drover's benchmarks, each printing medians and ratios against
/// baselines (the libvirt floor and peer tools) measured in the same run. `scripts/bench`
/// installs the peers, builds in release mode and runs this.
let arguments = Array(CommandLine.arguments.dropFirst())
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
/// The drover binary measured: beside this one, or $DROVER_BENCH_DROVER (a release build measured by a debug harness).
let drover = ProcessInfo.processInfo.environment["DROVER_BENCH_DROVER"] ?? binDir + "/drover"
/// The repository (for the example recipes and the baseline programs): the working directory or DROVER_REPO.
let repo = ProcessInfo.processInfo.environment["DROVER_REPO"] ?? FileManager.default.currentDirectoryPath
let runs = max(5, Int(ProcessInfo.processInfo.environment["DROVER_BENCH_RUNS"] ?? "") ?? 5)
let sizes = (ProcessInfo.processInfo.environment["DROVER_BENCH_SIZES"] ?? "100,1000,5000").split(separator: ",").compactMap { Int($0) }
let known = ["fleet", "inprocess", "validate", "bake", "rolling", "heal", "state", "push", "hosts", "debian"]
// `push` needs the second libvirt host (scripts/second-host), `hosts` the TLS host
// (scripts/tls-host), `debian` several full mmdebstrap runs: run on request only.
let scenarios = arguments.isEmpty ? known.filter { !["push", "hosts", "debian"].contains($0) } : arguments

print("drover-bench: medians of \(runs) runs (slow peers fewer, as printed), binary \(drover)")
var failures = 0
for scenario in scenarios {
  print("\n== \(scenario)")
  do {
    let lines: [String]
    switch scenario {
    case "fleet": lines = try FleetBenchmark.run(drover: drover, runs: runs, sizes: sizes, repo: repo)
    case "inprocess": lines = try InProcessBenchmark.run(drover: drover, runs: runs, sizes: sizes, repo: repo)
    case "validate": lines = try ValidateBenchmark.run(drover: drover, runs: runs)
    case "bake": lines = try BakeBenchmark.run(drover: drover, runs: runs, repo: repo)
    case "rolling": lines = try RollingBenchmark.run(drover: drover, repo: repo)
    case "heal": lines = try HealBenchmark.run(drover: drover, runs: runs)
    case "state": lines = try StateBenchmark.run(drover: drover, runs: runs)
    case "push": lines = try PushBenchmark.run(runs: runs)
    case "hosts": lines = try HostsBenchmark.run(drover: drover, runs: runs, repo: repo)
    case "debian": lines = try DebianBakeBenchmark.run(drover: drover, runs: runs, repo: repo)
    default:
      lines = ["unknown scenario '\(scenario)'; known: \(known.joined(separator: ", "))"]
      failures += 1
    }
    lines.forEach { print($0) }
  } catch {
    print("error: \(error)")
    failures += 1
  }
}
exit(failures == 0 ? 0 : 1)
