/// What a rollout does next, decided from its state alone.
public enum RolloutDecision: Sendable, Hashable {
  /// Replace these nodes (at most `policy.concurrency` at once) — the rest of the current wave.
  case replace(wave: Int, nodes: [String])
  /// Wait before the next wave.
  case soak(milliseconds: Int, beforeWave: Int)
  /// Judge the finished wave's new nodes by the analysis gates (#43), measuring while the soak lasts.
  case analyze(wave: Int, nodes: [String])
  /// Stop where it is; `resume` continues.
  case pause(reason: String)
  /// Put these replaced nodes back on the previous image.
  case rollback(reason: String, nodes: [String])
  case done
}

/// Decides the next step of a rollout.
///
/// Pure: the runner calls it in a loop (decide → act → journal). The budget is counted across the
/// whole rollout: once more nodes failed than it allows, no new node starts; the rollout rolls
/// back (or pauses, if the strategy says so). An abort rolls back; a pause request pauses.
///
/// - Parameter soaked: waves whose soak has been waited out.
public func nextRolloutStep(_ state: RolloutState, soaked: Set<Int> = []) -> RolloutDecision {
  if state.status == .rollingBack || state.abortRequested || state.budgetExceeded {
    let reason =
      state.abortRequested
      ? "aborted by request"
      : "error budget exceeded: \(state.failed.count) failed node\(state.failed.count == 1 ? "" : "s") > budget \(state.policy.budget) ("
        + state.failed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") + ")"
    if state.status != .rollingBack && !state.abortRequested && state.policy.onBudgetExceeded == .pause {
      return .pause(reason: reason)
    }
    // Every node touched by the rollout goes back: the replaced ones, the failed ones, and any a
    // crash left mid-step.
    let touched = state.schedule.joined().filter {
      (state.done.contains($0) || state.failed[$0] != nil || state.touched.contains($0)) && !state.rolledBack.contains($0)
    }
    return .rollback(reason: reason, nodes: touched)
  }
  if state.pauseRequested { return .pause(reason: "paused by request") }
  let gated = !state.policy.gates.isEmpty
  for (i, wave) in state.schedule.enumerated() {
    let remaining = wave.filter { !state.done.contains($0) && state.failed[$0] == nil }
    if remaining.isEmpty {
      // A finished wave is judged once by the gates, before the next one starts; its soak is
      // the gates' measuring time (and a heal has no gates: its "before" is a dead node).
      let replaced = wave.filter { state.done.contains($0) && state.failed[$0] == nil }
      if gated && state.kind == .upgrade && !replaced.isEmpty && state.analyzed[i] == nil { return .analyze(wave: i, nodes: replaced) }
      continue
    }
    let startedWave = wave.contains { state.done.contains($0) || state.failed[$0] != nil }
    if i > 0 && !gated && !startedWave && state.policy.soakMilliseconds > 0 && !soaked.contains(i) {
      return .soak(milliseconds: state.policy.soakMilliseconds, beforeWave: i)
    }
    return .replace(wave: i, nodes: remaining)
  }
  return .done
}
