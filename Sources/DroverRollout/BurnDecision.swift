import DroverModel
import Foundation

/// Whether the service's error budget allows the next wave (#44). Pure: the rates are measured
/// by the runner and passed in.
public enum BurnDecision: Sendable, Hashable {
  case proceed(String)
  /// Burning too fast (or unknown: a query failed, no traffic): wait and measure again.
  case wait(String)
}

public enum BurnRate {
  /// The burn rate of a window: the error ratio over it divided by the budget's (1 − objective);
  /// nil when it cannot be told (no traffic, a value that is not a number).
  public static func rate(good: Double, total: Double, objective: Double) -> Double? {
    guard good.isFinite, total.isFinite, total > 0, objective < 1 else { return nil }
    return max(0, 1 - good / total) / (1 - objective)
  }

  /// The windows a gate measures, each once (rules may share one).
  public static func windows(_ gate: BurnRateGate) -> [TimeSpan] {
    var seen: [TimeSpan] = []
    for r in gate.rules { for w in [r.long, r.short] where !seen.contains(w) { seen.append(w) } }
    return seen
  }

  static func x(_ v: Double) -> String { String(format: "%.1f×", v) }

  /// Decides from the measured burn rates (by window; nil: unknown). A rule whose long and short
  /// rates both exceed its factor holds the wave; an unknown rate holds it too (fail-closed, as
  /// kured's alert blocker: a budget nobody can read is not a budget to spend).
  public static func decide(_ gate: BurnRateGate, rates: [TimeSpan: Double?]) -> BurnDecision {
    var fine: [String] = []
    for rule in gate.rules {
      guard let long = rates[rule.long] ?? nil, let short = rates[rule.short] ?? nil else {
        return .wait("burn rate unknown over \(rule.long.promQL) / \(rule.short.promQL) (no traffic, or the query failed)")
      }
      if long > rule.factor && short > rule.factor {
        return .wait("burn rate \(x(long)) over \(rule.long.promQL) and \(x(short)) over \(rule.short.promQL) > \(x(rule.factor))")
      }
      fine.append("\(x(long)) / \(x(short)) over \(rule.long.promQL) / \(rule.short.promQL) ≤ \(x(rule.factor))")
    }
    return .proceed("burn rate " + fine.joined(separator: "; "))
  }
}
