import Foundation

/// Scenario 4: validate 1,000 pool files (whole `drover validate` process), and the time to the
/// first diagnostic on a bad input. Target: 1,000 files in under 0.3 s.
enum ValidateBenchmark {
  static func run(drover: String, runs: Int) throws -> [String] {
    let project = try ScratchProject("validate")
    defer { project.remove() }
    let dir = URL(fileURLWithPath: project.path)
    let template = """
      name: NAME
      hosts: [qemu:///system, qemu+ssh://root@h2/system]
      replicas: 3
      image: demo@v1
      resources: {vcpu: 2, memory: 512MiB, disk: 4GiB}
      labels: {role: web, team: platform}
      health:
        - {type: console, pattern: "READY", timeout: 60s}
        - {type: http, port: 8080, path: /healthz, status: 200}
      drain: {type: command, cordon: [/bin/true], timeout: 30s}
      upgrade: {canary: 1, waves: [25%, 50%], max_surge: 1, max_unavailable: 0, soak: 10s}
      error_budget: 10%

      """
    for i in 1...1000 {
      try template.replacingOccurrences(of: "NAME", with: "pool\(i)")
        .write(to: dir.appendingPathComponent("pools/pool\(i).yaml"), atomically: false, encoding: .utf8)
    }
    guard try runProcess(drover, ["validate"], cwd: dir.path) == 0 else { return ["validate: the generated specs did not validate"] }
    let whole = try Stopwatch.median(runs: runs) { try runProcess(drover, ["validate"], cwd: dir.path) }
    let empty = try Stopwatch.median(runs: runs) { try runProcess(drover, ["--version"], cwd: dir.path) }
    try "name: bad\nhosts: [qemu:///system]\nreplicas: -1\nimage: demo@v1\n".write(
      to: dir.appendingPathComponent("pools/pool1.yaml"), atomically: true, encoding: .utf8)
    let bad = try Stopwatch.median(runs: runs) { try runProcess(drover, ["validate", "pools/pool1.yaml", "images"], cwd: dir.path) }
    return [
      "validate 1,000 pool files (whole process)   \(Stopwatch.format(whole))  = \(Stopwatch.format(whole / 1000)) per file   target < 300 ms: \(whole < 0.3 ? "MET" : "MISSED")",
      "  process start-up alone (drover --version)  \(Stopwatch.format(empty))",
      "time to first diagnostic, one bad file       \(Stopwatch.format(bad))",
    ]
  }
}
