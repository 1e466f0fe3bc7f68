import DroverBasics
import DroverModel
import DroverPlan
import Foundation

/// Renders plans for people (Terraform style); the JSON document is `PlanFile.document`.
enum PlanView {
  /// - Parameter complete: false when the plan had errors (a host not read, a bad name): then it
  ///   never claims "No changes".
  static func human(_ plan: Plan, color: Bool, complete: Bool = true) -> String {
    let undeclared = plan.undeclared.map { u in
      "Pool \(u.pool) is not declared in pools/: kept (\(u.nodes.joined(separator: ", ")) on \(u.hosts.joined(separator: ", "))). drover apply --prune deletes them."
    }
    let kept = undeclared + unknown(plan) + keptNodes(plan)
    guard plan.hasChanges else {
      let verdict = complete ? "No changes. The hosts match the specs." : "No plan: it could not be made (see the errors below)."
      return (kept + (kept.isEmpty ? [] : [""]) + [verdict]).joined(separator: "\n")
    }
    func paint(_ text: String, _ kind: ActionKind) -> String {
      guard color else { return text }
      let code: String
      switch kind {
      case .create: code = "32"
      case .delete, .removeOverlay: code = "31"
      case .replace: code = "35"
      case .update, .start: code = "33"
      }
      return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
    var lines = ["Drover will perform the following actions:", ""]
    for a in plan.actions {
      lines.append("  # \(a.node) on \(a.host)\(a.destination.map { " → \($0)" } ?? ""): \(a.reason)")
      var detail = ""
      if let after = a.after?.ownership {
        detail = " (pool \(a.pool), image \(after.image), \(after.vcpu) vCPU, \(after.memoryMiB)MiB, disk \(after.diskMiB)MiB)"
      } else if let before = a.before {
        detail = " (pool \(a.pool), image \(before.image))"
      }
      let verb = a.kind == .start ? "start" : a.kind == .update ? "update" : ""
      lines.append(paint("\(a.kind.symbol.leftPadded(5)) \(a.node)", a.kind) + (verb.isEmpty ? "" : " [\(verb)]") + detail)
      lines.append("")
    }
    for r in plan.rollouts { lines += rollout(r) }
    for (host, how) in plan.acceleration.sorted(by: { $0.key < $1.key }) {
      lines.append("Domains defined on \(host) run with \(how).")
    }
    if !plan.acceleration.isEmpty { lines.append("") }
    for (pool, programs) in plan.programs.sorted(by: { $0.key < $1.key }) {
      lines.append("Programs pool \(pool) runs on this machine during this apply, as Drover's user:")
      lines += programs.map { "  \($0)" } + [""]
    }
    if !kept.isEmpty { lines += kept + [""] }
    let s = plan.summary
    lines.append("Plan: \(s.add) to add, \(s.change) to change, \(s.destroy) to destroy.")
    return lines.joined(separator: "\n")
  }

  /// What a saved plan was made from (`drover show`): the project, the specs, the images and the hosts.
  static func header(_ plan: Plan, file: String) -> String {
    var lines = ["Plan \(file) (format \(plan.formatVersion)) of project \(plan.project)"]
    lines.append("  specs: sha256:\(plan.specDigest.prefix(16)); world: sha256:\(plan.world.digest.prefix(16))")
    for (reference, digest) in plan.images.sorted(by: { $0.key < $1.key }) {
      lines.append("  image \(reference): " + (digest.isEmpty ? "not baked when planned" : "sha256:\(digest.prefix(16))"))
    }
    for (uri, entries) in plan.world.hosts.sorted(by: { $0.key < $1.key }) {
      let domains = entries.keys.filter { !$0.contains(" ") }.count
      lines.append("  host \(uri): \(domains) domain\(domains == 1 ? "" : "s") seen")
    }
    let selection = plan.targets.map { "--target \($0)" } + plan.excludes.map { "--exclude \($0)" } + plan.forceReplace.map { "--replace \($0)" }
      + (plan.prune ? ["--prune"] : [])
    if !selection.isEmpty { lines.append("  made with: " + selection.joined(separator: " ")) }
    return (lines + [""]).joined(separator: "\n")
  }

  /// `--skip-unreachable`: the nodes of each left-out pool on the host that was not read.
  static func unknown(_ plan: Plan) -> [String] {
    plan.unknown.flatMap { u in
      ["Pool \(u.pool) is not planned: host \(u.host) could not be read. Its nodes there are unknown:"]
        + (u.nodes.isEmpty ? ["      ? (none placed there by the spec; earlier nodes may be)"] : u.nodes.map { "      ? \($0)" })
        + (u.seen.isEmpty ? [] : ["  (read on its other hosts: \(u.seen.joined(separator: ", ")); nothing of the pool changes)"])
    }
  }

  /// Nodes kept for rollback (#45): not serving, not drift; when they go.
  static func keptNodes(_ plan: Plan) -> [String] {
    guard let kept = plan.kept, !kept.isEmpty else { return [] }
    return ["Kept for rollback (hibernated or shut off, not serving; drover rollout undo POOL brings them back, drover rollout finish POOL removes them):"]
      + kept.map { k in
        "      ~ \(k.node) on \(k.host) (pool \(k.pool), \(k.image), kept by rollout \(k.rollout) until \(KeptTime.text(k.until))\(k.reserves ? "" : "; capacity: disk-only"))"
      }
  }

  static func rollout(_ r: RolloutPreview) -> [String] {
    var lines = ["Rollout of pool \(r.pool): \(r.fromImage) → \(r.toImage)" + (r.resumes.map { " (resuming rollout \($0), in progress)" } ?? "")]
    for node in r.nodes where r.resumes == nil && node.from.image == node.to.image {
      lines.append("  \(node.key): \(node.reason)")
    }
    for (i, wave) in r.schedule.enumerated() {
      lines.append("  \(i == 0 && r.policy.canary > 0 ? "canary:" : "wave \(i):") \(wave.joined(separator: ", "))")
    }
    let p = r.policy
    lines.append(
      "  max_surge \(p.maxSurge), max_unavailable \(p.maxUnavailable) (\(p.usesSurge ? "new node first, then the old one goes" : "in place")), \(p.concurrency) at a time")
    lines.append(
      "  error budget: \(p.budget) failed node\(p.budget == 1 ? "" : "s") across the rollout, then \(p.onBudgetExceeded.rawValue); soak \(p.soakMilliseconds / 1000)s; health timeout \(p.healthTimeoutMilliseconds / 1000)s; drain on timeout: \(r.drainOnTimeout)")
    if !p.gates.isEmpty {
      lines.append("  analysis after the canary and each wave, measured for the soak (\(p.soakMilliseconds / 1000)s):")
      for g in p.gates {
        lines.append("    \(g.name): \(g.expect.rawValue) \(g.condition), every \(g.interval.seconds.formatted())s; \(Terminal.printable(g.query))")
      }
    }
    lines += ScheduleView.lines(p, now: Date().timeIntervalSince1970)
    let keeping = r.nodes.filter { $0.keep == true }.map(\.key)
    if !keeping.isEmpty, let seconds = p.keepSeconds {
      lines.append(
        "  keeps \(keeping.joined(separator: ", ")) \(p.keepState == .hibernated ? "hibernated (memory saved to disk)" : "shut off") with their disks for \(TimeSpan(milliseconds: Int(seconds * 1000))) once replaced (keep_previous\(p.keptCapacity == .diskOnly ? ", capacity: disk-only" : "")): a rollback \(p.keepState == .hibernated ? "resumes" : "starts") them again")
    }
    if let scheduler = r.scheduler, let names = r.schedulerNames, !names.isEmpty {
      lines.append("  \(scheduler) node names (drain.node_name):")
      for n in names {
        lines.append("    \(n.node): drains \(Terminal.printable(n.drains))" + (n.uncordons == n.drains ? ", then uncordons it" : ", uncordons \(Terminal.printable(n.uncordons))"))
      }
    }
    lines.append(String(format: "  estimated duration: ~%.0fs", r.estimatedSeconds))
    lines.append("")
    return lines
  }
}

extension String {
  func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
