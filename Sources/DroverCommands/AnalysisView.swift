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

  static func json(_ s: RolloutState) -> [[String: Any]] {
    s.measurements.map { m in
      var o: [String: Any] = [
        "gate": m.gate, "wave": m.wave, "time": m.time, "query": m.query, "verdict": m.verdict.rawValue, "why": m.why,
        "values": m.values.mapValues { $0.isFinite ? $0 as Any : NSNull() },
      ]
      if let b = m.baseline { o["baseline"] = b.isFinite ? b as Any : NSNull() }
      return o
    }
  }
}
