import DroverBasics
import DroverRollout
import Foundation

/// Renders a rollout's timeline: text for the terminal, SVG for a page (one row per node, a bar
/// per step coloured by outcome, the waves separated, the budget line drawn where the rollback
/// began). Every string from the journal is escaped for its medium.
enum RolloutTimelineView {
  static func seconds(_ s: Double) -> String { String(format: s < 10 ? "%.2fs" : "%.1fs", s) }

  static func waveName(_ wave: Int?, canary: Bool) -> String {
    guard let wave else { return "not scheduled" }
    return wave == 0 && canary ? "canary" : "wave \(wave)"
  }

  static func text(_ t: RolloutTimeline) -> String {
    let s = t.state
    let canary = s.policy.canary > 0
    let lines = [
      "Rollout \(s.id) of pool \(s.pool) (\(s.kind.rawValue)): \(s.fromImage) → \(s.toImage), \(s.status.rawValue) after \(seconds(t.length))",
      "  error budget \(s.policy.budget); waves: "
        + s.schedule.enumerated().map { "\(waveName($0.offset, canary: canary)) \($0.element.joined(separator: ","))" }.joined(separator: " | "),
    ]
    // Rows in schedule order; the rollout's own moments (sorted) where they happened among them.
    var marks = t.marks.sorted { $0.time < $1.time }[...]
    func mark(_ m: RolloutTimeline.Mark) -> String {
      "  -- +\(seconds(m.time)) \(m.label)" + (m.budget ? " (error budget \(s.policy.budget) exceeded)" : "")
    }
    var placed: [String] = []
    for row in t.rows {
      let start = row.bars.first?.start ?? .infinity
      while let m = marks.first, m.time <= start { placed.append(mark(marks.removeFirst())) }
      placed.append("  \(row.node) (\(waveName(row.wave, canary: canary))): \(row.result)" + (row.reason.map { " — \($0)" } ?? ""))
      for bar in row.bars {
        let took = bar.duration.map(seconds) ?? "…"
        let how = bar.outcome == .failed ? "FAILED" : bar.outcome.rawValue
        placed.append(
          "    +\(seconds(bar.start).leftPadded(7))  \((bar.rollback ? "↩ " : "") + bar.step)".padding(toLength: 36, withPad: " ", startingAt: 0)
            + "\(took.leftPadded(7))  \(how)" + (bar.detail.map { ": \($0)" } ?? ""))
      }
    }
    placed += marks.map(mark)
    return (lines + placed).map(Terminal.printable).joined(separator: "\n")
  }

  // MARK: SVG

  /// Text for an SVG: control characters as `?`, characters XML 1.0 does not allow (U+FFFE,
  /// U+FFFF, lone surrogates cannot occur in Swift) dropped, and markup escaped.
  static func xml(_ s: String) -> String {
    let allowed = String(String.UnicodeScalarView(Terminal.printable(s).unicodeScalars.filter { $0.value != 0xFFFE && $0.value != 0xFFFF }))
    return allowed.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  static let colours: [RolloutTimeline.Outcome: String] = [.done: "#2e7d32", .failed: "#c62828", .skipped: "#9e9e9e", .running: "#1565c0"]

  /// A measurement's colour by its verdict (an error is the backend's, grey: not a bad metric).
  static let gateColours: [GateMeasurement.Verdict: String] = [.pass: "#2e7d32", .fail: "#c62828", .inconclusive: "#f9a825", .error: "#9e9e9e"]

  static func svg(_ t: RolloutTimeline) -> String {
    let s = t.state
    let canary = s.policy.canary > 0
    let label = 170.0, width = 900.0, rowHeight = 26.0, top = 56.0
    let span = max(t.length, 0.001)
    let scale = (width - label - 20) / span
    // A gate lane per judged wave, under the nodes (#43): a dot per measurement.
    let gateWaves = Set(t.gates.map(\.measurement.wave)).sorted()
    let height = top + rowHeight * Double(max(t.rows.count, 1) + gateWaves.count) + 56
    func x(_ time: Double) -> Double { label + time * scale }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    var out = [
      ##"<?xml version="1.0" encoding="UTF-8"?>"##,
      ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(f(width))" height="\##(f(height))" viewBox="0 0 \##(f(width)) \##(f(height))" font-family="sans-serif" font-size="12">"##,
      ##"<rect class="background" x="0" y="0" width="\##(f(width))" height="\##(f(height))" fill="#ffffff"/>"##,
      ##"<text class="title" x="10" y="20" font-size="14" font-weight="bold">\##(xml("Rollout \(s.id) of pool \(s.pool): \(s.fromImage) → \(s.toImage)"))</text>"##,
      ##"<text class="summary" x="10" y="38">\##(xml("\(s.status.rawValue) after \(seconds(t.length)); error budget \(s.policy.budget); \(s.failed.count) failed"))</text>"##,
    ]
    var previousWave: Int?? = .none
    for (i, row) in t.rows.enumerated() {
      let y = top + Double(i) * rowHeight
      if previousWave != .some(row.wave) {
        out.append(##"<line class="wave" data-wave="\##(row.wave.map(String.init) ?? "-")" x1="0" y1="\##(f(y))" x2="\##(f(width))" y2="\##(f(y))" stroke="#607d8b" stroke-width="1"/>"##)
        out.append(##"<text class="wave-label" x="\##(f(width - 10))" y="\##(f(y + 11))" text-anchor="end" fill="#607d8b" font-size="10">\##(xml(waveName(row.wave, canary: canary)))</text>"##)
        previousWave = .some(row.wave)
      }
      out.append(##"<text class="node" x="10" y="\##(f(y + 17))">\##(xml(row.node)) (\##(xml(row.result)))</text>"##)
      for bar in row.bars {
        let start = x(bar.start), end = x(bar.end ?? t.length)
        let fill = bar.rollback && bar.outcome == .done ? "#ef6c00" : colours[bar.outcome] ?? "#000000"
        let title = "\(bar.step) \(bar.outcome.rawValue)" + (bar.duration.map { " in \(seconds($0))" } ?? "") + (bar.detail.map { ": \($0)" } ?? "")
        out.append(
          ##"<rect class="bar" data-node="\##(xml(row.node))" data-step="\##(xml(bar.step))" data-outcome="\##(bar.outcome.rawValue)" data-rollback="\##(bar.rollback)" x="\##(f(start))" y="\##(f(y + 5))" width="\##(f(max(2, end - start)))" height="\##(f(rowHeight - 10))" fill="\##(fill)" stroke="#263238" stroke-width="0.5"><title>\##(xml(title))</title></rect>"##)
      }
    }
    for (i, wave) in gateWaves.enumerated() {
      let y = top + Double(t.rows.count + i) * rowHeight
      let verdict = s.analyzed[wave].map { String($0.prefix { $0 != ":" }) } ?? "not decided"
      out.append(##"<text class="gate" x="10" y="\##(f(y + 17))">\##(xml("gates, \(waveName(wave, canary: canary)) (\(verdict))"))</text>"##)
      for g in t.gates where g.measurement.wave == wave {
        let m = g.measurement
        let title = "\(m.gate) \(m.verdict.rawValue) at \(seconds(g.time)): \(m.why)"
        out.append(
          ##"<circle class="measurement" data-gate="\##(xml(m.gate))" data-wave="\##(wave)" data-verdict="\##(m.verdict.rawValue)" cx="\##(f(x(g.time)))" cy="\##(f(y + rowHeight / 2))" r="5" fill="\##(gateColours[m.verdict] ?? "#000000")" stroke="#263238" stroke-width="0.5"><title>\##(xml(title))</title></circle>"##)
      }
    }
    let bottom = top + rowHeight * Double(t.rows.count + gateWaves.count)
    for mark in t.marks {
      let mx = x(mark.time)
      let colour = mark.budget ? "#c62828" : "#37474f"
      out.append(
        ##"<line class="\##(mark.budget ? "budget" : "mark")" x1="\##(f(mx))" y1="\##(f(top - 6))" x2="\##(f(mx))" y2="\##(f(bottom + 6))" stroke="\##(colour)" stroke-width="2" stroke-dasharray="6 3"/>"##)
      let anchor = mx > width * 0.6 ? "end" : "start"
      out.append(
        ##"<text class="\##(mark.budget ? "budget-label" : "mark-label")" x="\##(f(anchor == "end" ? mx - 4 : mx + 4))" y="\##(f(bottom + 20))" text-anchor="\##(anchor)" fill="\##(colour)" font-size="11">\##(xml(mark.budget ? "error budget \(s.policy.budget) exceeded: rolling back" : mark.label))</text>"##)
    }
    // The legend: what each colour means.
    for (i, entry) in [("done", "#2e7d32"), ("failed", "#c62828"), ("skipped", "#9e9e9e"), ("running", "#1565c0"), ("rollback", "#ef6c00")].enumerated() {
      let lx = 10 + Double(i) * 80
      out.append(##"<rect class="legend" x="\##(f(lx))" y="\##(f(height - 16))" width="10" height="10" fill="\##(entry.1)"/>"##)
      out.append(##"<text class="legend-label" x="\##(f(lx + 14))" y="\##(f(height - 7))" font-size="10">\##(entry.0)</text>"##)
    }
    out.append(##"<text class="axis" x="\##(f(label))" y="\##(f(height - 26))" fill="#607d8b" font-size="10">0s</text>"##)
    out.append(##"<text class="axis" x="\##(f(width - 20))" y="\##(f(height - 26))" text-anchor="end" fill="#607d8b" font-size="10">\##(seconds(t.length))</text>"##)
    out.append("</svg>")
    return out.joined(separator: "\n") + "\n"
  }
}
