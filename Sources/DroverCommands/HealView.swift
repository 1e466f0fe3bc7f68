import DroverBasics
import DroverEngine
import DroverPlan
import DroverRollout
import Foundation

/// Renders a heal pass: per pool its verdict and why, per node its condition (text or one JSON
/// event per line).
enum HealView {
  static func render(_ pass: HealPass, json: Bool, dryRun: Bool, color: Bool) {
    if json {
      for n in pass.nodes {
        var event: [String: Any] = [
          "event": "node", "format_version": HealPass.formatVersion, "pool": n.pool, "node": n.node, "key": n.key, "host": n.host,
          "condition": n.condition,
        ]
        if let state = n.state { event["state"] = state }
        if let since = n.since { event["unhealthy_for_seconds"] = wholeSeconds(pass.time - since) }
        if let reason = n.reason { event["reason"] = reason }
        Output.jsonLine(event)
      }
      for d in pass.decisions {
        Output.jsonLine([
          "event": "pool", "format_version": HealPass.formatVersion, "pool": d.pool, "verdict": d.verdict.name, "replace": d.replace, "left": d.left,
          "unknown": d.unknown, "why": d.why, "dry_run": dryRun,
        ])
      }
      return
    }
    let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: pass.time))
    Output.out("Heal pass of project \(pass.project) at \(when)\(dryRun ? " (dry run: nothing is changed)" : ""):")
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      Output.out("\n  pool \(d.pool): \(d.verdict.name) — \(d.why)")
      var rows: [[String]] = []
      for n in pass.nodes where n.pool == d.pool {
        let mark = d.replace.contains(n.key) ? (dryRun ? "would replace" : "replace") : ""
        let condition = n.condition == "unhealthy" ? "UNHEALTHY" : n.condition
        let since = n.since.map { " for \(wholeSeconds(pass.time - $0))s" } ?? ""
        rows.append([n.node, condition + since, n.state ?? "-", n.host, mark, n.reason.map(Terminal.printable) ?? ""])
      }
      if !rows.isEmpty {
        let table = Table.render([["NODE", "CONDITION", "STATE", "HOST", "ACTION", "REASON"]] + rows)
        Output.out(table.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
      }
    }
  }
}

/// Prometheus textfile metrics of a heal pass (node_exporter's textfile collector reads them):
/// written to a temporary file beside the target and renamed, so a scrape never sees half.
enum HealMetrics {
  static func write(_ pass: HealPass, failed: Set<String>, dryRun: Bool, stateDirectory: String, to path: String) throws {
    func label(_ s: String) -> String { PrometheusTextfile.escape(s) }
    let project = label(pass.project)
    var text = "# HELP drover_node_healthy 1 when the node is healthy after this pass, 0 when not (unknown nodes are left out).\n"
    text += "# TYPE drover_node_healthy gauge\n"
    let replaced = dryRun ? [] : Set(pass.decisions.flatMap(\.replace))
    for n in pass.nodes.sorted(by: { ($0.pool, $0.key) < ($1.pool, $1.key) }) where n.condition != "unknown" {
      let healthy = n.condition == "healthy" || (replaced.contains(n.key) && !failed.contains(n.key))
      text += "drover_node_healthy{project=\"\(project)\",pool=\"\(label(n.pool))\",node=\"\(label(n.key))\",host=\"\(label(n.host))\"} \(healthy ? 1 : 0)\n"
    }
    text += "# HELP drover_remediations_total Nodes replaced by heals, from the pool's journal.\n# TYPE drover_remediations_total counter\n"
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      text += "drover_remediations_total{project=\"\(project)\",pool=\"\(label(d.pool))\"} \(HealEngine.remediations(stateDirectory: stateDirectory, pool: d.pool))\n"
    }
    text += "# HELP drover_heal_short_circuit 1 when the pool had more unhealthy nodes than max_unhealthy and nothing was replaced.\n"
    text += "# TYPE drover_heal_short_circuit gauge\n"
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      let short = if case .shortCircuit = d.verdict { 1 } else { 0 }
      text += "drover_heal_short_circuit{project=\"\(project)\",pool=\"\(label(d.pool))\"} \(short)\n"
    }
    text += "# HELP drover_heal_last_pass_timestamp_seconds When the last heal pass ran.\n# TYPE drover_heal_last_pass_timestamp_seconds gauge\n"
    text += "drover_heal_last_pass_timestamp_seconds{project=\"\(project)\"} \(wholeSeconds(pass.time))\n"
    do { try PrometheusTextfile.write(text, to: path) } catch {
      throw Diagnostic.error("heal.metrics", "cannot write the metrics file \(path): \(error)", subject: path, hint: "the folder must exist and be writable")
    }
  }
}
