import DroverBasics
import DroverEngine
import DroverModel
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
        if let action = n.action {
          event["action"] = action
          event["discards_disk"] = action == RepairRung.replace.rawValue
        }
        if let next = n.next { event["next"] = next }
        Output.jsonLine(event)
      }
      for d in pass.decisions {
        Output.jsonLine([
          "event": "pool", "format_version": HealPass.formatVersion, "pool": d.pool, "verdict": d.verdict.name, "replace": d.replace, "left": d.left,
          "repairs": d.repairs.map { ["node": $0.key, "action": $0.rung.rawValue] }, "unknown": d.unknown, "why": d.why, "dry_run": dryRun,
        ])
      }
      for host in pass.outageHosts {
        Output.jsonLine(["event": "outage", "format_version": HealPass.formatVersion, "host": host])
      }
      return
    }
    let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: pass.time))
    Output.out("Heal pass of project \(pass.project) at \(when)\(dryRun ? " (dry run: nothing is changed)" : ""):")
    for host in pass.outageHosts {
      Output.out("  host \(host): OUTAGE — most of its nodes are unhealthy at once; nothing on it is reset or replaced")
    }
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      Output.out("\n  pool \(d.pool): \(Terminal.printable(d.verdict.name)) — \(Terminal.printable(d.why))")
      var rows: [[String]] = []
      for n in pass.nodes where n.pool == d.pool {
        // The one rung that deletes a disk is marked as such.
        let mark = n.action.map { action in
          (dryRun ? "would " : "") + action + (action == RepairRung.replace.rawValue ? " (DISCARDS DISK)" : "")
        } ?? n.next.map { "wait: " + $0 } ?? ""
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

extension HealView {
  /// What each repair on a node's own disk did.
  static func render(_ outcomes: [HealRepairRunner.Outcome], json: Bool) {
    for o in outcomes {
      if json {
        var event: [String: Any] = [
          "event": "repair", "format_version": HealPass.formatVersion, "node": o.repair.key, "domain": o.repair.node, "host": o.repair.host,
          "action": o.repair.rung.rawValue, "outcome": o.failure == nil ? "done" : "failed",
        ]
        if let failure = o.failure { event["error"] = failure }
        Output.jsonLine(event)
      } else if let failure = o.failure {
        Output.out("  \(o.repair.rung.rawValue) \(o.repair.node): FAILED: \(Terminal.printable(failure))")
      } else {
        Output.out("  \(o.repair.rung.rawValue) \(o.repair.node): done (same domain, same disk)")
      }
    }
  }
}

/// Prometheus textfile metrics of a heal pass (node_exporter's textfile collector reads them):
/// written to a temporary file beside the target and renamed, so a scrape never sees half.
enum HealMetrics {
  static func write(
    _ pass: HealPass, failed: Set<String>, dryRun: Bool, stateDirectory: String, keyring: Keyring?, state: StateStore, failedPasses: Int = 0, to path: String
  ) throws {
    func label(_ s: String) -> String { PrometheusTextfile.escape(s) }
    let project = label(pass.project)
    var text = "# HELP drover_node_healthy 1 when the node is healthy after this pass, 0 when not (unknown nodes are left out).\n"
    text += "# TYPE drover_node_healthy gauge\n"
    let replaced = dryRun ? [] : Set(pass.decisions.flatMap(\.replace) + pass.repairs.map(\.key))
    for n in pass.nodes.sorted(by: { ($0.pool, $0.key) < ($1.pool, $1.key) }) where n.condition != "unknown" {
      let healthy = n.condition == "healthy" || (replaced.contains(n.key) && !failed.contains(n.key))
      text += "drover_node_healthy{project=\"\(project)\",pool=\"\(label(n.pool))\",node=\"\(label(n.key))\",host=\"\(label(n.host))\"} \(healthy ? 1 : 0)\n"
    }
    text += "# HELP drover_remediations_total Nodes replaced by heals, from the pool's journal.\n# TYPE drover_remediations_total counter\n"
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      text += "drover_remediations_total{project=\"\(project)\",pool=\"\(label(d.pool))\"} \(HealEngine.remediations(stateDirectory: stateDirectory, pool: d.pool, keyring: keyring, state: state))\n"
    }
    text += "# HELP drover_heal_short_circuit 1 when the pool had more unhealthy nodes than max_unhealthy and nothing was replaced.\n"
    text += "# TYPE drover_heal_short_circuit gauge\n"
    for d in pass.decisions.sorted(by: { $0.pool < $1.pool }) {
      let short = if case .shortCircuit = d.verdict { 1 } else { 0 }
      text += "drover_heal_short_circuit{project=\"\(project)\",pool=\"\(label(d.pool))\"} \(short)\n"
    }
    text += "# HELP drover_heal_action 1 for the repair this pass ran on the node (resume, start, reset, replace).\n# TYPE drover_heal_action gauge\n"
    for n in pass.nodes.sorted(by: { ($0.pool, $0.key) < ($1.pool, $1.key) }) {
      guard let action = n.action else { continue }
      text += "drover_heal_action{project=\"\(project)\",pool=\"\(label(n.pool))\",node=\"\(label(n.key))\",action=\"\(label(action))\"} 1\n"
    }
    text += "# HELP drover_host_outage 1 when most of the host's nodes were unhealthy at once (nothing reset or replaced there).\n# TYPE drover_host_outage gauge\n"
    for host in Set(pass.nodes.map(\.host)).sorted() {
      text += "drover_host_outage{project=\"\(project)\",host=\"\(label(host))\"} \(pass.outageHosts.contains(host) ? 1 : 0)\n"
    }
    text += "# HELP drover_heal_pass_failures_total Passes of this process that could not read their state or a host.\n# TYPE drover_heal_pass_failures_total counter\n"
    text += "drover_heal_pass_failures_total{project=\"\(project)\"} \(failedPasses)\n"
    text += "# HELP drover_abandoned_calls Calls to hosts abandoned at their deadlines whose threads still wait (bounded; a host with one is not called again until it answers).\n# TYPE drover_abandoned_calls gauge\n"
    text += "drover_abandoned_calls{project=\"\(project)\"} \(Deadline.outstanding)\n"
    text += "# HELP drover_abandoned_calls_total Calls to hosts this process abandoned at their deadlines.\n# TYPE drover_abandoned_calls_total counter\n"
    text += "drover_abandoned_calls_total{project=\"\(project)\"} \(Deadline.abandonedTotal)\n"
    text += "# HELP drover_heal_last_pass_timestamp_seconds When the last heal pass ran.\n# TYPE drover_heal_last_pass_timestamp_seconds gauge\n"
    text += "drover_heal_last_pass_timestamp_seconds{project=\"\(project)\"} \(wholeSeconds(pass.time))\n"
    do { try PrometheusTextfile.write(text, to: path) } catch {
      throw Diagnostic.error("heal.metrics", "cannot write the metrics file \(path): \(error)", subject: path, hint: "the folder must exist and be writable")
    }
  }
}
