import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// How a rollout's schedule-gate waits (#44) are shown: `rollout status`'s line ("waiting for the
/// window (opens in 3 h 12 m)"), their JSON (`apply --json`, `rollout status --json`) and their
/// textfile metrics (`apply --textfile`).
enum DeferralView {
  static func object(_ d: Deferral) -> [String: Any] {
    var o: [String: Any] = ["kind": d.kind.rawValue, "reason": d.reason, "wave": d.wave, "began": d.began]
    if let u = d.until { o["until"] = u }
    if let x = d.outcome { o["outcome"] = x.rawValue }
    if let w = d.waitedSeconds { o["waited_seconds"] = w }
    return o
  }

  /// `rollout status` lines: the wait under way, then how many ended and how long they took.
  static func lines(_ s: RolloutState, now: Double) -> [String] {
    var lines: [String] = []
    if let w = s.waiting, s.status == .running { lines.append("  \(w.waitingText(now: now))") }
    let ended = s.deferrals.filter { $0.outcome != nil }
    if !ended.isEmpty {
      let total = ended.compactMap(\.waitedSeconds).reduce(0, +)
      let last = ended[ended.count - 1]
      lines.append(
        "  deferred \(ended.count) time\(ended.count == 1 ? "" : "s") (\(Deferral.span(total)) in all); last: \(last.kind.rawValue), \(last.outcome?.rawValue ?? ""): \(last.reason)")
    }
    return lines
  }

  /// Textfile metrics: deferrals by pool, kind and outcome, the seconds waited, and 1 while a
  /// pool's rollout waits (with why).
  static func metrics(_ rollouts: [RolloutState]) -> String {
    let e = PrometheusTextfile.escape
    var count: [String: Int] = [:]
    var seconds: [String: Double] = [:]
    var waiting: [String: Int] = [:]
    for s in rollouts {
      for d in s.deferrals {
        let key = "pool=\"\(e(s.pool))\",kind=\"\(d.kind.rawValue)\",outcome=\"\(d.outcome?.rawValue ?? "waiting")\""
        count[key, default: 0] += 1
        seconds["pool=\"\(e(s.pool))\",kind=\"\(d.kind.rawValue)\"", default: 0] += d.waitedSeconds ?? 0
      }
      if let w = s.waiting, s.isActive { waiting["pool=\"\(e(s.pool))\",kind=\"\(w.kind.rawValue)\""] = 1 }
    }
    let g = PrometheusTextfile.gauge
    return g("drover_rollout_deferrals", "Batches a maintenance window or the error budget's burn rate held back, by pool, kind and outcome.", count.mapValues { "\($0)" })
      + g("drover_rollout_deferred_seconds", "Seconds rollouts waited for a window or the error budget, by pool and kind.", seconds.mapValues { "\($0)" })
      + g("drover_rollout_waiting", "1 while a pool's rollout waits for its window or its error budget.", waiting.mapValues { "\($0)" })
  }
}

/// The plan's account of a rollout's schedule gates (#44): its window and when the first node
/// would start under it, and the error budget's burn-rate rules.
enum ScheduleView {
  static func lines(_ p: RolloutPolicy, now: Double) -> [String] {
    var lines: [String] = []
    if let w = p.window {
      let node = p.estimatedNodeSeconds ?? Double(p.healthTimeoutMilliseconds) / 1000
      let when: String
      switch MaintenanceSchedule.decide(w, now: now, seconds: node) {
      case .open: when = "the window is open: the first node would start now"
      case .wait(let until, let why):
        let waits = until - now <= w.maxWait.seconds ? "waits for it" : "pauses (beyond max_wait \(w.maxWait)); apply again then"
        when = "\(why): the first node would start at \(local(until, w.timezone)) (in \(Deferral.span(until - now))); the rollout \(waits)"
      case .never(let why): when = "never: \(why)"
      }
      lines.append("  maintenance window: \(Terminal.printable(w.description)), checked before each node (~\(Int(node.rounded()))s each until the pool's journal has history): \(when)")
      for x in w.exclusions {
        lines.append("    excluded \(local(x.from, w.timezone)) – \(local(x.to, w.timezone)): \(Terminal.printable(x.reason))")
      }
    }
    if let b = p.burnRate {
      let rules = b.rules.map { "\($0.long.promQL) and \($0.short.promQL) both > \(String(format: "%g", $0.factor))×" }.joined(separator: ", or ")
      lines.append(
        "  error budget from the SLO (\(String(format: "%g", b.objective * 100))% over \(b.window)): before each wave, waits while the burn rate over \(rules); pauses after max_wait \(b.maxWait)")
    }
    return lines
  }

  /// `2026-12-08 02:00 Europe/Berlin`.
  static func local(_ t: Double, _ zone: String) -> String { TimeText.local(t, zone) }

}
