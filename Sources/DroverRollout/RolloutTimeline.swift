/// A rollout as a timeline, from its journal alone (`drover rollout show`): per node, each step
/// with when it started, how long it took and how it ended; the waves; when the rollout rolled
/// back or paused. Pure: the records in, the timeline out, so the text and the SVG drawn from it
/// are tested as values.
public struct RolloutTimeline: Sendable, Hashable {
  public enum Outcome: String, Sendable, Hashable { case done, failed, skipped, running }

  /// One step of one node.
  public struct Bar: Sendable, Hashable {
    public var step: String
    /// Seconds since the rollout started.
    public var start: Double
    /// nil: it never ended (the process died in it, or it is running now).
    public var end: Double?
    public var outcome: Outcome
    /// Part of the rollback, not of the rollout forward.
    public var rollback: Bool
    public var detail: String?
    public var duration: Double? { end.map { $0 - start } }
  }

  public struct Row: Sendable, Hashable {
    public var node: String
    /// Its wave in the schedule (0: the canary when there is one); nil: not scheduled.
    public var wave: Int?
    public var bars: [Bar]
    /// replaced, failed, rolled back, pending or in progress.
    public var result: String
    public var reason: String?
  }

  /// A moment of the rollout as a whole (rolled back, paused, resumed).
  public struct Mark: Sendable, Hashable {
    public var time: Double
    public var label: String
    /// The error budget was exceeded here (the rollback's start).
    public var budget: Bool
  }

  public var state: RolloutState
  public var rows: [Row]
  public var marks: [Mark]
  /// The analysis measurements (#43), each at its time: the SVG's gate lane per wave.
  public var gates: [GateMark] = []

  public struct GateMark: Sendable, Hashable {
    public var time: Double
    public var measurement: GateMeasurement
  }
  /// Seconds from the start to the last record (the end, or now for a rollout in progress).
  public var length: Double

  /// The timeline of `state`'s rollout from `records` (its pool's journal, any order); nil when
  /// the records do not hold its start.
  public static func make(_ records: [JournalRecord], state: RolloutState) -> RolloutTimeline? {
    let mine = records.filter { $0.rollout == state.id }.sorted { $0.seq < $1.seq }
    guard let first = mine.first, first.event == .rolloutStarted else { return nil }
    let t0 = first.time
    var bars: [String: [Bar]] = [:]
    var marks: [Mark] = []
    var rollingBack = false
    var gates: [GateMark] = []
    for r in mine {
      let t = max(0, r.time - t0)
      let node = r.node ?? ""
      switch r.event {
      case .stepStarted:
        bars[node, default: []].append(Bar(step: r.step ?? "?", start: t, end: nil, outcome: .running, rollback: rollingBack, detail: nil))
      case .stepDone:
        let step = r.step ?? "?"
        // Steps journaled only as their outcome: a cordon or drain that failed or was skipped
        // (a heal's). `remove-failed` is a step of its own: removing a replacement that failed.
        let outcomes: [String: (String, Outcome)] = [
          "cordon-failed": ("cordon", .failed), "drain-failed": ("drain", .failed), "drain-skipped": ("drain", .skipped),
        ]
        if let (name, outcome) = outcomes[step] {
          if let i = bars[node]?.lastIndex(where: { $0.step == name || $0.step == "drain-forced" && name == "drain" }), bars[node]?[i].end == nil {
            bars[node]?[i].end = t
            bars[node]?[i].outcome = outcome
            bars[node]?[i].detail = r.detail
          } else {
            bars[node, default: []].append(Bar(step: name, start: t, end: t, outcome: outcome, rollback: rollingBack, detail: r.detail))
          }
        }
        if outcomes[step] != nil { continue }
        if let i = bars[node]?.lastIndex(where: { $0.step == step && $0.end == nil }) {
          bars[node]?[i].end = t
          bars[node]?[i].outcome = .done
        }
      case .measured:
        if let m = r.detail.flatMap(GateMeasurement.init(journalText:)) { gates.append(GateMark(time: t, measurement: m)) }
      case .nodeFailed where (r.detail ?? "").hasPrefix("analysis:"):
        // Failed by a gate, not by a step: the gate lane shows it.
        break
      case .nodeFailed:
        // The step that failed: one that never ended, or the health check that answered no.
        if let i = bars[node]?.lastIndex(where: { $0.end == nil || $0.step == "health" }) {
          if bars[node]?[i].end == nil { bars[node]?[i].end = t }
          bars[node]?[i].outcome = .failed
          bars[node]?[i].detail = r.detail
        }
      case .rollbackStarted:
        rollingBack = true
        marks.append(Mark(time: t, label: "rolling back: \(r.detail ?? "")", budget: (r.detail ?? "").contains("budget")))
      case .paused: marks.append(Mark(time: t, label: "paused" + (r.detail.map { ": \($0)" } ?? ""), budget: false))
      case .resumed: marks.append(Mark(time: t, label: "resumed", budget: false))
      case .rolledBack, .completed, .failed:
        // A step still open at the end was cut off (a crash before a resume).
        for (n, list) in bars { for i in list.indices where list[i].end == nil { bars[n]?[i].end = t } }
      default: break
      }
    }
    let length = max(0, (mine.last?.time ?? t0) - t0)
    let order = state.schedule.joined() + bars.keys.sorted().filter { !state.schedule.joined().contains($0) }
    let rows = order.map { key -> Row in
      let result: String
      if state.rolledBack.contains(key) {
        result = "rolled back"
      } else if state.failed[key] != nil {
        result = "failed"
      } else if state.done.contains(key) {
        result = "replaced"
      } else {
        result = bars[key] == nil ? "pending" : state.isActive ? "in progress" : "not finished"
      }
      return Row(
        node: key, wave: state.schedule.firstIndex { $0.contains(key) }, bars: bars[key] ?? [], result: result, reason: state.failed[key])
    }
    var timeline = RolloutTimeline(state: state, rows: rows, marks: marks, length: length)
    timeline.gates = gates
    return timeline
  }
}
