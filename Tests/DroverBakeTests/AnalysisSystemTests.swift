import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #43 on real VMs: busybox nodes on `qemu:///system`, a real Prometheus (the fixture's, on
/// loopback) scraping the fixture exporter that stands for the service. v2 boots and prints its
/// ready marker — every health check passes — but its canary's error ratio is 50 %: the gate
/// fails, the budget is exceeded, the pool rolls back. The same v2 with a healthy ratio
/// completes; `rollout show` lists the measured values.
extension BakeSystemTests {
  final class AnalysisProject: VMTestProject {
    let prometheusDir: String

    init() throws {
      prometheusDir = "/tmp/drover-ans-prometheus-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
      try super.init("ans")
      for version in ["v1", "v2"] {
        try """
          #!/bin/busybox sh
          /bin/busybox --install -s /bin
          echo "DROVER READY \(version)"
          exec sh -c 'while :; do sleep 3600; done'
          """.write(to: dir.appendingPathComponent("images/files/init-\(version)"), atomically: true, encoding: .utf8)
        try """
          name: ans
          version: \(version)
          base: {rootfs: busybox}
          files: [{source: files/init-\(version), path: /init, mode: "0755"}]
          cmdline: console=ttyS0 panic=-1 quiet
          size: 32MiB

          """.write(to: dir.appendingPathComponent("images/\(version).yaml"), atomically: true, encoding: .utf8)
      }
    }

    /// A window open now (an hour ago to three hours on, UTC): #44's checks run on real VMs too.
    static var openWindow: String {
      let f = DateFormatter()
      f.locale = Locale(identifier: "en_US_POSIX")
      f.timeZone = TimeZone(identifier: "UTC")
      f.dateFormat = "HH:mm"
      let hour = (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600
      return "{start: \"\(f.string(from: Date(timeIntervalSince1970: hour - 3600)))\", end: \"\(f.string(from: Date(timeIntervalSince1970: hour + 3 * 3600)))\"}"
    }

    func pool(replicas: Int, image: String) throws {
      try """
        name: ans
        window: \(Self.openWindow)
        error_budget:
          nodes: 0
          slo:
            good: 'sum(rate(app_requests_total{node="svc"}[{{window}}])) - sum(rate(app_errors_total{node="svc"}[{{window}}]))'
            total: 'sum(rate(app_requests_total{node="svc"}[{{window}}]))'
            objective: 99%
          max_burn_rate: [{long: 6s, short: 3s, factor: 2}]
          max_wait: 2m
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]
        upgrade:
          canary: 1
          waves: [1]
          max_surge: 1
          max_unavailable: 0
          health_timeout: 60s
          soak: 3s
          analysis:
            - name: error-ratio
              query: 'sum by (node) (rate(app_errors_total{node=~"{{nodes}}"}[5s])) / sum by (node) (rate(app_requests_total{node=~"{{nodes}}"}[5s]))'
              expect: per_node
              condition: "< 0.05"
              interval: 1s

        """.write(to: dir.appendingPathComponent("pools/ans.yaml"), atomically: true, encoding: .utf8)
    }

    /// The service's error ratio per node name, for every name a node of the pool can have.
    func ratios(_ bad: [String: Double]) throws {
      // "svc": the service's requests, whose error budget gates each wave (#44): healthy.
      var all: [String: Double] = ["svc": 0]
      for i in 1...2 {
        all["ans-\(i)"] = 0.001
        for g in 2...6 { all["ans-\(i)-g\(g)"] = 0.001 }
      }
      all.merge(bad) { $1 }
      try FileManager.default.createDirectory(atPath: prometheusDir, withIntermediateDirectories: true)
      try JSONSerialization.data(withJSONObject: all).write(to: URL(fileURLWithPath: prometheusDir + "/ratios.json.tmp"))
      _ = rename(prometheusDir + "/ratios.json.tmp", prometheusDir + "/ratios.json")
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/prometheus")

    /// Starts the fixture on a free port (port 0: it picks) and names it in drover.yaml.
    func startPrometheus() throws {
      let r = try DroverProcess.run("/bin/bash", [Self.fixtures.appendingPathComponent("start.sh").path, prometheusDir, "0"], environment: [:])
      let port = (try? String(contentsOfFile: prometheusDir + "/port", encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
      guard r.status == 0, let port else { throw PrometheusStartError(output: r.output) }
      try "project: \(project)\nanalysis: {prometheus: http://127.0.0.1:\(port)}\n".write(to: dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    }

    func cleanUp(_ connection: Connection) {
      _ = try? DroverProcess.run("/bin/bash", [Self.fixtures.appendingPathComponent("stop.sh").path, prometheusDir], environment: [:])
      try? FileManager.default.removeItem(atPath: prometheusDir)
      try? pool(replicas: 0, image: "ans@v1")
      _ = try? run(["apply", "--auto-approve"])
      removeAll(connection)
    }
  }

  struct PrometheusStartError: Error { var output: String }

  @Test func aCanaryThatRaisesTheServicesErrorRatioIsRolledBackOnRealVMs() throws {
    let p = try AnalysisProject()
    defer { p.cleanUp(backend.connection) }
    try p.ratios(["ans-1-g2": 0.5])
    try p.startPrometheus()
    #expect(try p.run(["bake"]).status == 0)
    try p.pool(replicas: 2, image: "ans@v1")
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")

    try p.pool(replicas: 2, image: "ans@v2")
    let gated = try p.run(["apply", "--auto-approve"])
    #expect(gated.status == 3, "the rollout did not complete: \(gated.output)")
    #expect(gated.output.contains("error-ratio: fail") && gated.output.contains("ans-1-g2: 0.5"), "the measured value is said: \(gated.output)")
    #expect(gated.output.contains("wave 0: error budget allows it: burn rate"), "the budget was read before the canary: \(gated.output)")
    let back = try vmNodes(p)
    #expect(back.count == 2 && back.allSatisfy { $0.image == "ans@v1" }, "rolled back: \(back.map(\.name))")
    let shown = try p.run(["rollout", "show"])
    #expect(shown.output.contains("error-ratio: FAIL ans-1-g2=0.5"), "\(shown.output)")
    try expectNoOrphan(p, "rolled back by the gate")

    // The service is healthy on v2 now: the same rollout passes the gate and completes.
    try p.ratios([:])
    let passed = try p.run(["apply", "--auto-approve"])
    #expect(passed.status == 0, "\(passed.output)")
    let now = try vmNodes(p)
    #expect(now.count == 2 && now.allSatisfy { $0.image == "ans@v2" }, "\(now.map(\.name))")
    let again = try p.run(["rollout", "show"])
    #expect(again.output.contains("error-ratio: PASS"), "\(again.output)")
    try expectNoOrphan(p, "completed through the gate")
  }
}
