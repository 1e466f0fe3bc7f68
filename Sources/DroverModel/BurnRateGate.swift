/// An error budget read from the service's SLO (#44): before each wave (and before heal's
/// `replace` rung, never before a repair) the burn rate is measured over each rule's long and
/// short windows; when both exceed a rule's factor the budget is burning too fast for churn, and
/// the rollout waits, at most `maxWait`, then pauses with the reason. The SRE workbook's pairs
/// (14.4× over 1 h and 5 m; 6× over 6 h and 30 m) are the usual rules.
public struct BurnRateGate: Sendable, Hashable, Codable {
  /// PromQL templates over `{{window}}` (a Prometheus duration such as `1h`): the good and the
  /// total events' rate or count over that window.
  public var good: String
  public var total: String
  /// The SLO's objective as a fraction (0.999 for 99.9 %).
  public var objective: Double
  /// The SLO's period (`30d`): said in messages; a burn rate of 1 spends the budget in exactly it.
  public var window: TimeSpan
  public var rules: [BurnRule]
  public var maxWait: TimeSpan

  public init(good: String, total: String, objective: Double, window: TimeSpan = .minutes(30 * 24 * 60), rules: [BurnRule], maxWait: TimeSpan = .minutes(30)) {
    self.good = good
    self.total = total
    self.objective = objective
    self.window = window
    self.rules = rules
    self.maxWait = maxWait
  }
}

/// One multiwindow rule: too fast when the burn rate over `long` and over `short` both exceed `factor`.
public struct BurnRule: Sendable, Hashable, Codable {
  public var long: TimeSpan
  public var short: TimeSpan
  public var factor: Double

  public init(long: TimeSpan, short: TimeSpan, factor: Double) {
    self.long = long
    self.short = short
    self.factor = factor
  }
}

extension TimeSpan {
  /// As Prometheus writes a range (`1h`, `5m`, `90s`, `500ms`).
  public var promQL: String {
    let ms = milliseconds
    if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
  }
}
