import DroverRollout
import Foundation

/// Renders a rollout's analysis (#43): per judged wave, each gate's measurements — when, the
/// values measured, the verdict and why — and how the wave's analysis ended. The values are the
/// point (Flagger #1147: users could not see what was measured).
enum AnalysisView {
  static func text(_ s: RolloutState) -> [String] {
    guard !s.measurements.isEmpty || !s.analyzed.isEmpty else { return [] }
    var lines = ["", "Analysis (\(s.policy.gates.map { "\($0.name) \($0.condition)" }.joined(separator: ", "))):"]
    let waves = Set(s.measurements.map(\.wave)).union(s.analyzed.keys).sorted()
    for wave in waves {
      let label = wave == 0 && s.policy.canary > 0 ? "canary" : "wave \(wave)"
      lines.append("  \(label): \(s.analyzed[wave] ?? "not decided")")
      for m in s.measurements where m.wave == wave {
        let offset = s.started > 0 ? String(format: "+%.1fs", m.time - s.started) : ""
        let values = m.values.sorted { $0.key < $1.key }.map { "\($0.key)=\(number($0.value))" }.joined(separator: " ")
        lines.append(
          "    \(offset) \(m.gate): \(m.verdict.rawValue.uppercased())\(values.isEmpty ? "" : " \(values)")\(m.baseline.map { " baseline=\(number($0))" } ?? "") — \(m.why)")
      }
    }
    return lines
  }

  static func number(_ x: Double) -> String { x.isNaN ? "NaN" : String(format: "%.4g", x) }

  /// One measurement as JSON (the `measurement` of an `apply --json` event). JSON has no NaN: a
  /// value that is not a number is written as null (the verdict says what it counted as).
  static func object(_ m: GateMeasurement) -> [String: Any] {
    var o: [String: Any] = [
      "gate": m.gate, "wave": m.wave, "query": m.query, "verdict": m.verdict.rawValue, "why": m.why,
      "values": m.values.mapValues { $0.isFinite ? $0 as Any : NSNull() },
    ]
    if let b = m.baseline { o["baseline"] = b.isFinite ? b as Any : NSNull() }
    return o
  }

  /// A rollout's measurements for `rollout status --json`: each with its time.
  static func json(_ s: RolloutState) -> [[String: Any]] {
    s.measurements.map { m in object(m).merging(["time": m.time]) { a, _ in a } }
  }
}

/// The rollouts' analysis as Prometheus textfile metrics (`apply --textfile`): each gate's last
/// measured value per node, how many measurements each verdict had, and how each judged wave
/// ended — so a dashboard shows what the gate saw, not only that a rollout stopped.
enum AnalysisMetrics {
  static func render(_ rollouts: [RolloutState], at time: Date) -> String {
    let e = PrometheusTextfile.escape
    var last: [String: Double] = [:]
    var verdicts: [String: Int] = [:]
    var waves: [String: Int] = [:]
    for s in rollouts {
      for m in s.measurements {
        for (node, v) in m.values { last["pool=\"\(e(s.pool))\",gate=\"\(e(m.gate))\",wave=\"\(m.wave)\",node=\"\(e(node))\""] = v }
        verdicts["pool=\"\(e(s.pool))\",gate=\"\(e(m.gate))\",verdict=\"\(m.verdict.rawValue)\"", default: 0] += 1
      }
      for (wave, outcome) in s.analyzed {
        let verdict = outcome.hasPrefix("passed") ? "passed" : "failed"
        waves["pool=\"\(e(s.pool))\",wave=\"\(wave)\",verdict=\"\(verdict)\""] = 1
      }
    }
    func number(_ v: Double) -> String { v.isNaN ? "NaN" : v == .infinity ? "+Inf" : v == -.infinity ? "-Inf" : "\(v)" }
    let g = PrometheusTextfile.gauge
    return g("drover_analysis_value", "The last value each analysis gate measured, by pool, gate, wave and node.", last.mapValues(number))
      + g("drover_analysis_measurements", "Analysis measurements by pool, gate and verdict (pass, fail, inconclusive, error).", verdicts.mapValues { "\($0)" })
      + g("drover_analysis_wave", "How each judged wave's analysis ended (1 for its verdict).", waves.mapValues { "\($0)" })
      + DeferralView.metrics(rollouts)
      + g("drover_analysis_last_run_timestamp_seconds", "When this apply wrote these metrics.", ["": "\(Int(time.timeIntervalSince1970))"])
  }
}
