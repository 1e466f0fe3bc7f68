import DroverBasics
import DroverEngine
import DroverPlan
import DroverRollout
import Foundation

/// The `apply --json` stream (and the replacements of `heal --json`): one
/// JSON object per line, each with `format_version`, `event` and `time`, so a pipeline reads it
/// line by line and never parses a sentence. Schema: schemas/apply-event.schema.json.
///
/// - `action`: a planned action of the plan's own (create, update, delete…) started, done,
///   failed or skipped.
/// - `rollout`: a rollout's progress, typed by `type` (started, resumed, wave, soak, step, node,
///   rollback_started, rolled_back, paused) with `node`, `step`, `wave`, `duration_seconds`,
///   `outcome` where they apply.
/// - `diagnostics`: errors and warnings (the diagnostics document, on one line).
/// - `summary`: the last line: what was created, changed and removed, and the exit status
///   (`replacements` when the apply is part of a heal or a drain, whose own summary follows).
enum ApplyEvents {
  /// 2.0: every line carries `format_version`; rollout events are typed; step events are `action`.
  static let formatVersion = "2.0"
  static let lock = NSLock()

  static func emit(_ event: String, _ fields: [String: Any]) {
    var object = fields
    object["format_version"] = formatVersion
    object["event"] = event
    object["time"] = object["time"] ?? ISO8601DateFormatter().string(from: Date())
    lock.withLock { Output.jsonLine(object) }
  }

  static func action(_ event: ApplyEvent, seconds: Double?) {
    let a = event.action
    var fields: [String: Any] = [
      "time": ISO8601DateFormatter().string(from: event.time), "outcome": event.status.rawValue, "action": a.kind.rawValue, "pool": a.pool,
      "node": a.node, "host": a.host,
    ]
    if let m = event.message { fields["message"] = m }
    if let seconds { fields["duration_seconds"] = seconds }
    emit("action", fields)
  }

  static func rollout(pool: String, _ e: RolloutEvent) {
    var fields: [String: Any] = ["type": e.kind.rawValue, "pool": pool, "rollout": e.rollout, "message": e.message]
    if let v = e.node { fields["node"] = v }
    if let v = e.step { fields["step"] = v }
    if let v = e.wave { fields["wave"] = v }
    if let v = e.nodes { fields["nodes"] = v }
    if let v = e.durationSeconds { fields["duration_seconds"] = v }
    if let v = e.outcome { fields["outcome"] = v }
    if let v = e.output { fields["output"] = v }
    if let m = e.measurement { fields["measurement"] = AnalysisView.object(m) }
    if let d = e.deferral { fields["deferral"] = DeferralView.object(d) }
    emit("rollout", fields)
  }

  /// What was done, counted as the nodes were: a rollout's and a rollback's creations and
  /// removals included.
  /// `rollouts`: how each rollout this apply ran ended, with its failed and rolled-back nodes.
  /// - Parameter event: `replacements` when the run is part of another command (a heal's, a
  ///   host drain's), whose own summary is the last line.
  static func summary(
    added: Int, changed: Int, destroyed: Int, failed: Int, skipped: Int = 0, interrupted: Bool = false, exitStatus: Int32 = 0,
    rollouts: [RolloutOutcome] = [], event: String = "summary"
  ) {
    emit(
      event,
      [
        "added": added, "changed": changed, "destroyed": destroyed, "failed": failed, "skipped": skipped, "interrupted": interrupted,
        "exit_status": Int(exitStatus),
        "rollouts": rollouts.map { r -> [String: Any] in
          [
            "pool": r.state.pool, "rollout": r.state.id, "status": r.state.status.rawValue, "failed": r.state.failed,
            "rolled_back": r.state.rolledBack.sorted(), "created": r.created, "removed": r.removed,
          ]
        },
      ])
  }
}
