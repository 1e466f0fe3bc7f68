import ArgumentParser
import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation

/// `drover drift`: a read-only check for out-of-band changes, for cron, timers and CI.
struct DriftCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drift",
    abstract: "Report out-of-band changes to owned domains, changing nothing.",
    discussion: """
      Opens every host read-only: it cannot define, start, stop or edit anything, and writes no \
      lock or journal. Spec changes not yet applied are reported as pending, not drift.

      Exit codes: 0 clean, 2 drift found (or pending changes with --include-pending), 1 could not \
      check (bad spec, unreachable host, permission). A read error is never reported as drift.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "Only these pools (default: all).", completion: NameCompletion.pools)
  var pools: [String] = []

  @Flag(help: "Print a versioned JSON report.")
  var json = false

  @Flag(help: "Also exit 2 when spec changes are waiting to be applied.")
  var includePending = false

  @Option(help: "Write node_exporter textfile-collector metrics to this file (atomically).")
  var prometheus: String?

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let started = Date()
    PhaseTimings.start()
    defer { PhaseTimings.report() }
    let context: ProjectContext
    do {
      context = try ProjectContext.load(project, readOnly: true, imagePool: images.imagePool, keepAliveByDefault: false)
    } catch {
      try writeMetrics(findings: [], success: false, at: started)
      throw error
    }
    let world = context.observe(detailed: true)
    PhaseTimings.mark("observe")
    let specs = context.specs.poolSpecs.filter { pools.isEmpty || pools.contains($0.name) }
    var findings = detectDrift(
      pools: specs, observed: world, project: project.projectName, imageDigests: images.catalogue.digestsByReference,
      keyHeld: context.keyring.key != nil, judgedUnhealthy: ((try? HealLedger.configured(stateDirectory: project.stateDirectory, keyring: context.keyring, state: context.state))?.unhealthy(pools: specs.map(\.name))) ?? [:])
    PhaseTimings.mark("detect")
    defer { PhaseTimings.mark("output") }
    if !pools.isEmpty { findings = findings.filter { pools.contains($0.pool) } }
    let calls = context.backends.values.reduce(into: (total: 0, writes: 0)) {
      $0.total += $1.calls.total
      $0.writes += $1.calls.writes
    }
    let checked = world.unreachable.isEmpty
    try writeMetrics(findings: findings, success: checked, at: started)

    let drift = findings.filter(\.isDrift), pending = findings.filter { !$0.isDrift }
    if json {
      Output.json([
        "format_version": "1.0", "checked_at": ISO8601DateFormatter().string(from: started), "complete": checked,
        "drift_count": drift.count, "pending_count": pending.count,
        "findings": findings.map { f in
          [
            "kind": f.kind.rawValue, "drift": f.isDrift, "pool": f.pool, "node": f.node, "host": f.host,
            "expected": f.expected, "observed": f.observed, "fix": f.fix,
          ] as [String: Any]
        },
        "unreachable": world.unreachable, "libvirt_calls": ["total": calls.total, "writes": calls.writes],
      ])
    } else {
      Output.out(DriftView.human(drift: drift, pending: pending, unread: world.unreachable.keys.sorted()))
    }
    if !checked { throw CommandFailure(Unreachable.diagnostics(world.unreachable, saying: "could not check"), inDocument: json) }
    if !drift.isEmpty || (includePending && !pending.isEmpty) { throw ExitCode(2) }
  }

  func writeMetrics(findings: [DriftFinding], success: Bool, at time: Date) throws {
    guard let prometheus else { return }
    try PrometheusTextfile.write(PrometheusTextfile.render(findings: findings, success: success, at: time), to: prometheus)
  }
}

/// Human rendering of a drift report.
enum DriftView {
  static func human(drift: [DriftFinding], pending: [DriftFinding], unread: [String] = []) -> String {
    var lines: [String] = []
    if drift.isEmpty && !unread.isEmpty {
      lines.append("Drift not checked on \(unread.count) host\(unread.count == 1 ? "" : "s") that could not be read: \(unread.joined(separator: ", ")).")
      lines.append("No drift on the hosts that were read.")
    } else if drift.isEmpty {
      lines.append("No drift: every owned node matches what Drover applied.")
    } else {
      lines.append("Drift found (\(drift.count) finding\(drift.count == 1 ? "" : "s")):")
      for f in drift { lines += entry(f) }
    }
    if !pending.isEmpty {
      lines.append("")
      lines.append("Pending, not drift (\(pending.count) spec change\(pending.count == 1 ? "" : "s") not yet applied):")
      for f in pending { lines += entry(f) }
    }
    return lines.joined(separator: "\n")
  }

  static func entry(_ f: DriftFinding) -> [String] {
    [
      "", "  \(f.node) on \(f.host) [pool \(f.pool)]: \(f.kind.rawValue)", "      expected: \(f.expected)",
      "      observed: \(f.observed)", "      fix:      \(f.fix)",
    ]
  }
}

/// node_exporter textfile-collector output, written atomically (temp file + rename) so the
/// collector never reads half a file.
enum PrometheusTextfile {
  static func render(findings: [DriftFinding], success: Bool, at time: Date) -> String {
    var counts: [String: Int] = [:]
    for f in findings { counts["pool=\"\(escape(f.pool))\",kind=\"\(f.kind.rawValue)\"", default: 0] += 1 }
    var text = "# HELP drover_drift_findings Drift findings (and pending spec changes, kind=\"pending\") by pool and kind.\n"
    text += "# TYPE drover_drift_findings gauge\n"
    for key in counts.keys.sorted() { text += "drover_drift_findings{\(key)} \(counts[key]!)\n" }
    text += "# HELP drover_drift_last_check_timestamp_seconds When the last drift check ran.\n"
    text += "# TYPE drover_drift_last_check_timestamp_seconds gauge\n"
    text += "drover_drift_last_check_timestamp_seconds \(Int(time.timeIntervalSince1970))\n"
    text += "# HELP drover_drift_check_success 1 when every host could be checked.\n"
    text += "# TYPE drover_drift_check_success gauge\n"
    text += "drover_drift_check_success \(success ? 1 : 0)\n"
    // Kept nodes (#45) are not drift: counted on their own, per pool.
    var kept: [String: Int] = [:]
    for f in findings where f.kind == .kept { kept["pool=\"\(escape(f.pool))\"", default: 0] += 1 }
    if !kept.isEmpty { text += gauge("drover_kept_nodes", help: "Nodes kept shut off for a warm rollback (keep_previous), by pool.", kept.mapValues(String.init)) }
    return text
  }

  /// One gauge family: its HELP and TYPE lines, then a sample per label set in label order
  /// (`""`: a sample without labels).
  static func gauge(_ name: String, help: String, _ samples: [String: String]) -> String {
    var text = "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
    for key in samples.keys.sorted() { text += (key.isEmpty ? name : "\(name){\(key)}") + " \(samples[key] ?? "")\n" }
    return text
  }

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
  }

  static func write(_ text: String, to path: String) throws {
    let temp = path + ".tmp.\(getpid())"
    try Data(text.utf8).write(to: URL(fileURLWithPath: temp))
    guard rename(temp, path) == 0 else {
      try? FileManager.default.removeItem(atPath: temp)
      throw Diagnostic.error("drift.metrics", "cannot write \(path): \(String(cString: strerror(errno)))")
    }
  }
}
