import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// Analysis gates in a rollout (#43): the pre-flight before any node is touched, and a finished
/// wave's judgement. Every decision is `nextGateStep`'s; this only queries, journals and waits.
extension RolloutRunner {
  /// A rollout with gates starts (or resumes) only when its backend answers.
  func preflight(_ policy: RolloutPolicy, resuming: String? = nil) throws {
    // The error budget's burn rate (#44) is read from the same Prometheus.
    guard !policy.gates.isEmpty || policy.burnRate != nil else { return }
    let asking = policy.gates.isEmpty ? "an error budget read from its SLO (error_budget.slo)" : "analysis gates (\(policy.gates.map(\.name).joined(separator: ", ")))"
    let what = resuming.map { "rollout \($0) was not resumed" } ?? "the rollout did not start"
    guard let metrics = hooks.metrics else {
      throw Diagnostic.error(
        "analysis.unconfigured", "pool \(pool.name) has \(asking) but no Prometheus to ask; \(what) and no node was touched",
        subject: "pool \(pool.name)", hint: "name it in drover.yaml: analysis: {prometheus: http://HOST:9090}")
    }
    if case .error(let why) = metrics.query("vector(1)") {
      throw Diagnostic.error(
        "analysis.unreachable", "Prometheus at \(metrics.endpoint) does not answer (\(why)); \(what) and no node was touched", subject: "pool \(pool.name)",
        hint: "a metrics backend that is down is not a bad metric: bring it back, then apply again")
    }
  }

  /// The values of a step's query templates (`AnalysisVariables`): each node variable as a regex
  /// of its values over the step's new nodes (read from the hosts: their names were decided when
  /// they were made), the nodes not replaced yet, the images and the pool. `names` are the new
  /// nodes' hostnames, which a `per_node` answer's node label carries.
  func analysisValues(_ state: RolloutState, nodes keys: [String]) throws -> (names: [String], values: [String: String]) {
    var made: [NodeVariables] = []
    for key in keys {
      guard let node = state.nodes[key] else { continue }
      made += try domains(index: node.index).filter { $0.ownership.generation == node.to.generation }.map {
        NodeVariables(ownership: $0.ownership, address: nil)
      }
    }
    let old = state.schedule.joined().filter { !state.done.contains($0) && state.failed[$0] == nil }.compactMap {
      state.nodes[$0].map { CloudInitSeed.hostname(of: $0.from) }
    }
    let names = made.map(\.hostname)
    var values: [String: String] = [
      "nodes": AnalysisVariables.regex(names), "old_nodes": AnalysisVariables.regex(old), "image": state.toImage,
      "previous_image": state.fromImage, "pool": pool.name,
    ]
    for variable in ["node", "domain", "hostname", "address"] {
      values[variable] = AnalysisVariables.regex(made.compactMap { $0[variable] })
    }
    return (names, values)
  }

  /// Measures wave `wave`'s new nodes by every gate until `StepAnalysis` decides: each
  /// measurement journaled (sealed) and reported; the soak is the gates' measuring time.
  func analyze(_ state: RolloutState, wave: Int, nodes keys: [String]) throws -> StepAnalysis {
    let gates = state.policy.gates
    guard let metrics = hooks.metrics else { return .paused("no Prometheus is configured for the analysis gates") }
    let (names, values) = try analysisValues(state, nodes: keys)
    let soak = Double(state.policy.soakMilliseconds) / 1000
    let began = ProcessInfo.processInfo.systemUptime
    var slept = 0.0
    // Failures this wave already had (before a pause, a crash or Ctrl-C) still count against
    // failure_limit; the soak itself starts again.
    var taken: [String: [GateMeasurement]] = Dictionary(grouping: state.measurements.filter { $0.wave == wave && $0.verdict == .fail }, by: \.gate)
    // When each gate measures next (elapsed seconds); nil: its next decision says.
    var due: [String: Double] = [:]
    hooks.onEvent(
      .init(
        .analysis, rollout: state.id, wave: wave, nodes: keys,
        message: "analysing \(wave == 0 && state.policy.canary > 0 ? "the canary" : "wave \(wave)") (\(names.joined(separator: ", "))): \(gates.map(\.name).joined(separator: ", ")) for \(Int(soak))s"))
    // Virtual time counts the waits asked for, so a test's instant sleep still moves the soak on.
    func elapsed() -> Double { max(ProcessInfo.processInfo.systemUptime - began, slept) }
    while true {
      if hooks.shouldStop() { return .paused("interrupted during the analysis of wave \(wave)") }
      // A pause or abort asked for from another terminal is seen between measurements.
      if let now = try journal.checkedRollouts().last(where: { $0.id == state.id }), now.pauseRequested || now.abortRequested { return .interrupted }
      let decisions = gates.map { nextGateStep($0, measurements: taken[$0.name] ?? [], elapsed: elapsed(), soak: soak) }
      let verdict = StepAnalysis.combine(decisions)
      guard verdict == .measuring else { return verdict }
      for (gate, decision) in zip(gates, decisions) {
        if case .measure(let after) = decision, due[gate.name] == nil { due[gate.name] = elapsed() + after }
      }
      let pending = zip(gates, decisions).compactMap { g, d -> AnalysisGate? in if case .measure = d { return g } else { return nil } }
      let next = pending.map { due[$0.name] ?? 0 }.min() ?? elapsed()
      let wait = next - elapsed()
      if wait > 0 {
        hooks.sleep(wait)
        slept = max(slept, next)
      }
      for gate in pending where (due[gate.name] ?? .infinity) <= elapsed() + 1e-9 {
        let query = AnalysisVariables.render(gate.query, values)
        let answer = metrics.query(query)
        // The last wave has no old node left: its baseline is the one last measured before.
        let previous = (taken[gate.name] ?? []).reversed().compactMap(\.baseline).first ?? state.measurements.reversed().first { $0.gate == gate.name && $0.baseline != nil }?.baseline
        let baseline: QueryAnswer? = gate.baseline.map { template in
          if values["old_nodes"] == AnalysisVariables.matchesNothing, let previous { return .scalar(previous) }
          return metrics.query(AnalysisVariables.render(template, values))
        }
        let j = AnalysisJudge.judge(answer, baseline: baseline, gate: gate, nodes: names)
        let m = GateMeasurement(
          gate: gate.name, wave: wave, time: Date().timeIntervalSince1970, query: query, values: j.values, baseline: j.baseline, verdict: j.verdict, why: j.why)
        try journal.append(state.id, .measured, step: gate.name, detail: m.journalText)
        var event = RolloutEvent(.measurement, rollout: state.id, step: gate.name, wave: wave, outcome: nil, message: "  \(gate.name): \(m.verdict.rawValue): \(m.why)")
        event.measurement = m
        hooks.onEvent(event)
        taken[gate.name, default: []].append(m)
        due[gate.name] = nil
      }
    }
  }
}
