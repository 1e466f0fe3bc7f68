import DroverBasics
import DroverEngine
import DroverPlan
import Foundation

/// Renders what `drover watch` says of its lead (#41): leading, standing by, the lead lost, and
/// `watch --status`.
enum WatchView {
  static func say(_ role: WatchLeadership.Status, json: Bool) {
    switch role {
    case .leading(let token, _):
      if json {
        var event: [String: Any] = ["event": "watch", "format_version": HealPass.formatVersion, "role": "leader", "pid": Int(getpid()), "host": ProcessInfo.processInfo.hostName]
        if let token { event["token"] = token }
        Output.jsonLine(event)
      } else {
        Output.out("watch: leading" + (token.map { " (fencing token \($0))" } ?? ""))
      }
    case .standingBy(let leader):
      if json {
        var event: [String: Any] = ["event": "watch", "format_version": HealPass.formatVersion, "role": "standby"]
        if let leader { event["leader"] = ["pid": Int(leader.pid), "host": leader.host, "command": leader.command] }
        Output.jsonLine(event)
      } else {
        Output.out("watch: standing by; \(leader.map { PoolLock.describe($0) } ?? "another watch") leads")
      }
    }
  }

  /// What a role says, for saying it once: the leader's process, not when it was seen.
  static func key(_ role: WatchLeadership.Status) -> String {
    switch role {
    case .leading: return "leading"
    case .standingBy(let leader): return "standby \(leader.map { "\($0.pid)@\($0.host)" } ?? "")"
    }
  }

  static func lost(_ why: String, json: Bool) {
    if json {
      Output.jsonLine(["event": "watch", "format_version": HealPass.formatVersion, "role": "lost", "reason": why])
    } else {
      Output.out("watch: lost the lead: \(why)")
    }
  }

  /// `watch --status`: who leads, with the lease it renews.
  static func status(_ project: LoadedProject, json: Bool) throws {
    let state = try project.stateStore()
    let leader = try WatchLeadership.leader(stateDirectory: project.stateDirectory, state: state)
    if json {
      var event: [String: Any] = ["event": "watch-status", "format_version": "1.0", "project": project.projectName]
      if let (holder, lease) = leader {
        var who: [String: Any] = ["pid": Int(holder.pid), "host": holder.host, "command": holder.command, "since": ISO8601DateFormatter().string(from: holder.started)]
        if let token = lease?.token { who["token"] = token }
        if let ago = lease?.renewedAgo { who["renewed_seconds_ago"] = (ago * 10).rounded() / 10 }
        if let seconds = lease?.lease { who["lease_seconds"] = seconds }
        event["leader"] = who
      }
      Output.jsonLine(event)
      return
    }
    guard let (holder, lease) = leader else {
      Output.out("no watch leads project \(project.projectName)")
      return
    }
    var line = "leader: \(PoolLock.describe(holder))"
    if let lease {
      if let token = lease.token { line += ", fencing token \(token)" }
      if let ago = lease.renewedAgo, let seconds = lease.lease { line += String(format: ", lease renewed %.1f s ago (of %.0f s)", ago, seconds) }
    }
    Output.out(line)
  }
}
