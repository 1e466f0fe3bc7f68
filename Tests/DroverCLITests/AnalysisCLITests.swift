import DroverEngine
import Foundation
import Testing

/// #43 through the binary: a pool with an analysis gate, a real Prometheus (the fixture's, as in
/// the engine tests) named in drover.yaml. The plan shows the gate; `apply --json` reports every
/// measurement as a typed event that matches its schema; `rollout show` lists the values;
/// `rollout status --json` carries them too.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"), "needs Debian's prometheus (run scripts/setup)"))
struct AnalysisCLITests {
  static let fixtures = CLIHarness.repo.appendingPathComponent("Tests/Fixtures/prometheus")

  /// Starts the fixture in `dir` with these per-node error ratios; returns its URL.
  static func startPrometheus(_ dir: String, ratios: [String: Double]) throws -> String {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try JSONSerialization.data(withJSONObject: ratios).write(to: URL(fileURLWithPath: dir + "/ratios.json"))
    // Drover's own spawner: its children get no descriptor but their three (a pipe left open in
    // the fixture's background servers would keep the wait for its end going forever).
    // Port 0: the fixture picks a free port and says which.
    let result = HookRunner.run(["/bin/bash", fixtures.appendingPathComponent("start.sh").path, dir, "0"], timeout: 60)
    let port = (try? String(contentsOfFile: dir + "/port", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    guard result.status == 0, let port else {
      stopPrometheus(dir)  // an exporter that started goes with the Prometheus that did not
      throw FixtureError(message: "prometheus did not start: \(result.output)")
    }
    return "http://127.0.0.1:\(port)"
  }

  static func stopPrometheus(_ dir: String) { _ = HookRunner.run(["/bin/bash", fixtures.appendingPathComponent("stop.sh").path, dir], timeout: 30) }

  @Test func aGatedRolloutReportsEveryMeasurementAndShowsItsValues() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("an")
    let names = (1...2).flatMap { ["\(pool)-\($0)", "\(pool)-\($0)-g2"] }
    let dir = h.dir.appendingPathComponent("prometheus").path
    let url = try Self.startPrometheus(dir, ratios: Dictionary(uniqueKeysWithValues: names.map { ($0, 0.002) }))
    defer { Self.stopPrometheus(dir) }
    try "project: \(h.project)\nstate: {backend: local, dir: .drover}\nanalysis: {prometheus: \(url)}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let spec = """
      upgrade:
        canary: 1
        max_surge: 1
        max_unavailable: 0
        soak: 2s
        analysis:
          - name: error-ratio
            query: 'sum by (node) (rate(app_errors_total{node=~"{{nodes}}"}[5s])) / sum by (node) (rate(app_requests_total{node=~"{{nodes}}"}[5s]))'
            expect: per_node
            condition: "< 0.05"
            interval: 1s

      """
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: spec)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 2, image: "demo@v2", extra: spec)
    let plan = try h.run(["plan"])
    #expect(plan.stdout.contains("analysis after the canary and each wave") && plan.stdout.contains("error-ratio: per_node < 0.05"), "\(plan.stdout)")
    let planJSON = try h.run(["plan", "--json"])
    try JSONContractTests.expectValid("plan", planJSON.stdout)
    let textfile = h.dir.appendingPathComponent("analysis.prom").path
    let apply = try h.run(["apply", "--auto-approve", "--json", "--textfile", textfile])
    let metrics = (try? String(contentsOfFile: textfile, encoding: .utf8)) ?? ""
    #expect(metrics.contains("drover_analysis_value{pool=\"\(pool)\",gate=\"error-ratio\",wave=\"0\",node=\"\(pool)-1-g2\"} 0.00"), "\(metrics)")
    #expect(metrics.contains("drover_analysis_wave{pool=\"\(pool)\",wave=\"1\",verdict=\"passed\"} 1"), "\(metrics)")
    #expect(apply.status == 0, "\(apply.stdout)\n\(apply.stderr)")
    try JSONContractTests.expectValid("apply-event", apply.stdout)
    let measured = JSONContractTests.lines(apply.stdout).filter { $0["type"] as? String == "measurement" }
    #expect(!measured.isEmpty && measured.allSatisfy { ($0["measurement"] as? [String: Any])?["verdict"] as? String == "pass" }, "\(measured)")
    let svgPath = h.dir.appendingPathComponent("gates.svg").path
    let show = try h.run(["rollout", "show", "--svg", svgPath])
    let svg = (try? String(contentsOfFile: svgPath, encoding: .utf8)) ?? ""
    #expect(svg.contains("class=\"gate\"") && svg.contains("data-verdict=\"pass\"") && svg.contains("gates, canary (passed)"), "a gate lane per wave")
    #expect(show.stdout.contains("Analysis (error-ratio < 0.05)") && show.stdout.contains("error-ratio: PASS \(pool)-1-g2=0.002"), "\(show.stdout)")
    let status = try h.run(["rollout", "status", "--json"])
    try JSONContractTests.expectValid("rollout-status", status.stdout)
  }

  @Test func aGatedPoolWithoutAPrometheusIsRefusedBeforeAnyNode() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("an")
    let spec = "upgrade:\n  canary: 1\n  analysis:\n    - {name: errors, query: 'vector(0)', condition: '< 1'}\n"
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: spec)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0, "creating nodes needs no gate")
    try h.writePool(pool, replicas: 2, image: "demo@v2", extra: spec)
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status != 0)
    #expect((apply.stdout + apply.stderr).contains("no Prometheus to ask"), "\(apply.stdout)\n\(apply.stderr)")
    let status = try h.run(["status", "--json"])
    #expect(!status.stdout.contains("demo@v2"), "no node was touched")
  }
}
struct FixtureError: Error { var message: String }
