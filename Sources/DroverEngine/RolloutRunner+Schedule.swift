import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// Maintenance windows and the error budget's burn rate in a rollout (#44). Every decision is
/// `ScheduleGate.decide`'s; this measures the burn rate, predicts a node's duration from the
/// pool's journal, journals each deferral and waits (on the injected clock, in slices that see
/// Ctrl-C, and at most a minute before the journal's pause and abort requests are read again).
extension RolloutRunner {
  /// One run's waits: the one journaled as open (its kind and start are what `max_wait` counts
  /// from), and the waves whose burn rate was found fine (measured again on a resumed run).
  struct ScheduleWaits {
    var open: Deferral?
    var burnPassed: Set<Int> = []
  }

  enum GateResult: Equatable {
    case go
    /// A wait was taken: decide again (the journal may hold a pause or abort request by now).
    case again
    case paused(String)
    case interrupted
  }

  /// The longest single wait before the journal is read again.
  static let scheduleSliceSeconds = 60.0

  /// The schedule gates before a batch of wave `wave`; `history` is the pool's journal as the
  /// loop just read it (its node durations predict the next one).
  func scheduleGate(_ state: RolloutState, wave: Int, history: [RolloutState], waits: inout ScheduleWaits) throws -> GateResult {
    let policy = state.policy
    guard policy.window != nil || policy.burnRate != nil else { return .go }
    var burn: BurnDecision?
    if let gate = policy.burnRate, !waits.burnPassed.contains(wave) {
      let measured = measureBurn(gate)
      burn = measured
      if case .proceed(let why) = measured {
        waits.burnPassed.insert(wave)
        hooks.onEvent(.init(.deferral, rollout: state.id, wave: wave, outcome: "passed", message: "wave \(wave): error budget allows it: \(why)"))
      }
    }
    let now = hooks.now()
    let step = ScheduleGate.decide(
      policy: policy, kind: state.kind, burn: burn, now: now, predictedSeconds: predictedNodeSeconds(policy, history: history),
      waitingSince: waits.open.map { [$0.kind: $0.began] } ?? [:])
    switch step {
    case .go:
      try endWait(state, &waits, .proceeded)
      return .go
    case .wait(let seconds, let kind, let reason, let until):
      // One deferral per kind of wait, however often its burn rate is measured again.
      if let open = waits.open, open.kind != kind { try endWait(state, &waits, .proceeded) }
      if waits.open == nil {
        let d = Deferral(kind: kind, reason: reason, wave: wave, began: now, until: until)
        try journal.append(state.id, .deferred, step: String(wave), detail: d.journalText)
        waits.open = d
        var event = RolloutEvent(.deferral, rollout: state.id, wave: wave, outcome: "waiting", message: "wave \(wave): \(d.waitingText(now: now))")
        event.deferral = d
        hooks.onEvent(event)
      }
      guard sleepWatching(min(seconds, Self.scheduleSliceSeconds)) else {
        try endWait(state, &waits, .interrupted)
        return .interrupted
      }
      return .again
    case .pause(let kind, let reason):
      if let open = waits.open, open.kind != kind { try endWait(state, &waits, .proceeded) }
      if waits.open == nil {
        // A gate that pauses at once is a deferral too: journaled, with no wait.
        let d = Deferral(kind: kind, reason: reason, wave: wave, began: now)
        try journal.append(state.id, .deferred, step: String(wave), detail: d.journalText)
        waits.open = d
      }
      try endWait(state, &waits, .paused)
      return .paused(reason)
    }
  }

  /// Ends the open wait, journaled with its outcome and how long it lasted.
  func endWait(_ state: RolloutState, _ waits: inout ScheduleWaits, _ outcome: Deferral.Outcome) throws {
    guard var d = waits.open else { return }
    let now = hooks.now()
    d.outcome = outcome
    d.waitedSeconds = max(0, now - d.began)
    try journal.append(state.id, .deferralEnded, step: String(d.wave), detail: d.journalText)
    waits.open = nil
    var event = RolloutEvent(
      .deferral, rollout: state.id, wave: d.wave, durationSeconds: d.waitedSeconds, outcome: outcome.rawValue,
      message: "wave \(d.wave): \(d.kind == .window ? "window wait" : "burn-rate wait") ended (\(outcome.rawValue)) after \(Deferral.span(d.waitedSeconds ?? 0))")
    event.deferral = d
    hooks.onEvent(event)
  }

  /// Sleeps `seconds` in slices of at most one, stopping early when asked to; false if it was.
  func sleepWatching(_ seconds: Double) -> Bool {
    var left = seconds
    while left > 0 {
      if hooks.shouldStop() { return false }
      let slice = min(1, left)
      hooks.sleep(slice)
      left -= slice
    }
    return !hooks.shouldStop()
  }

  /// The next node's predicted duration: the 90th percentile of the pool's own replacements in
  /// its journal; with none yet, the plan's estimate.
  func predictedNodeSeconds(_ policy: RolloutPolicy, history: [RolloutState]) -> Double {
    MaintenanceSchedule.predictedSeconds(history: history.flatMap { $0.nodeSeconds.values }, fallback: policy.estimatedNodeSeconds ?? Double(policy.healthTimeoutMilliseconds) / 1000)
  }

  func measureBurn(_ gate: BurnRateGate) -> BurnDecision {
    guard let metrics = hooks.metrics else { return .wait("no Prometheus is configured to read the error budget's burn rate") }
    return BurnMeter(metrics: metrics).decide(gate)
  }
}

/// Reads an error budget's burn rate (#44): each of the gate's windows once, good and total,
/// decided by `BurnRate.decide` (an unknown rate holds: fail-closed).
struct BurnMeter {
  let metrics: any MetricsQuerying

  func decide(_ gate: BurnRateGate) -> BurnDecision {
    var rates: [TimeSpan: Double?] = [:]
    for window in BurnRate.windows(gate) {
      let good = Self.single(metrics.query(gate.good.replacingOccurrences(of: "{{window}}", with: window.promQL)))
      let total = Self.single(metrics.query(gate.total.replacingOccurrences(of: "{{window}}", with: window.promQL)))
      rates[window] = good.flatMap { g in total.flatMap { BurnRate.rate(good: g, total: $0, objective: gate.objective) } }
    }
    return BurnRate.decide(gate, rates: rates)
  }

  /// One number from an answer: a scalar, or a vector of exactly one series; nil otherwise.
  static func single(_ answer: QueryAnswer) -> Double? {
    switch answer {
    case .scalar(let x): return x.isFinite ? x : nil
    case .vector(let series): return series.count == 1 && series[0].value.isFinite ? series[0].value : nil
    case .error: return nil
    }
  }
}
