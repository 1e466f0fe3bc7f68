import DroverModel

/// Heal's remediation ladder: per unhealthy node, the gentlest repair that applies and has not
/// been tried in this incident — resume a paused node, start a stopped one on its own disk,
/// power-cycle one that runs but does not answer, and only then replace it (the one rung that
/// discards a disk). Owns: the per-node rules. Must not: read a clock, a file or a host; the
/// pool-wide guards (`max_unhealthy`, outages, `max_in_flight`, `cooldown`) are `decideHeal`'s.
///
/// Why a ladder: a node that is only paused or shut down keeps its disk and its data when it is
/// brought back, and a signal Drover could not take (a beat it could not read) is no proof of
/// death. Replacing first made every such node worse.

/// One repair tried in an incident, journaled (in the heal ledger) before it runs, so a crash
/// between rungs never repeats a disruptive one.
public struct RepairAttempt: Sendable, Hashable, Codable {
  public var rung: RepairRung
  /// When it was decided (seconds since 1970).
  public var at: Double
  /// Until when a fresh sign of life is awaited before the next rung may run.
  public var graceEnds: Double

  public init(rung: RepairRung, at: Double, graceEnds: Double) {
    self.rung = rung
    self.at = at
    self.graceEnds = graceEnds
  }
}

/// A node's incident: from the pass that first found it unhealthy until it has been healthy for
/// `unhealthy_after` in a row. A node that flaps stays in one incident and climbs the ladder
/// instead of being resumed forever.
public struct RepairIncident: Sendable, Hashable, Codable {
  public var began: Double
  public var attempts: [RepairAttempt]
  /// Since when the node has been healthy again (nil: it is unhealthy now).
  public var healthySince: Double?

  public init(began: Double, attempts: [RepairAttempt] = [], healthySince: Double? = nil) {
    self.began = began
    self.attempts = attempts
    self.healthySince = healthySince
  }

  public var tried: Set<RepairRung> { Set(attempts.map(\.rung)) }
}

/// What the ladder says for one node this pass.
public enum LadderStep: Sendable, Hashable {
  case healthy
  /// Nothing yet: within `repair_after`, a repair's grace, or until `replace` is due.
  case waiting(String)
  /// This rung is due now (the pool's guards may still hold a disruptive one back).
  case act(RepairRung)
  /// Every rung the pool allows was tried (a pool without `replace`): reported, never rebuilt.
  case exhausted(String)
}

/// The rungs that can act on a domain in libvirt state `state`, gentlest first.
public func applicableRungs(_ state: String) -> [RepairRung] {
  switch state {
  case "paused", "pmsuspended": return [.resume, .reset, .replace]
  case "shutoff", "crashed": return [.start, .replace]
  default: return [.reset, .replace]
  }
}

/// The ladder for one node. Pure: `now` is given. Returns the step and the incident to remember
/// (nil: no incident, or it just ended). An attempt is added by `recordAttempt` once the pool's
/// guards let the rung run.
public func climbLadder(
  state: String, condition: NodeCondition, incident: RepairIncident?, remediation r: RemediationSpec, now: Double
) -> (step: LadderStep, incident: RepairIncident?) {
  switch condition {
  case .unknown(let why): return (.waiting(why), incident)
  case .healthy:
    guard var incident else { return (.healthy, nil) }
    let since = incident.healthySince ?? now
    if now - since >= r.unhealthyAfter.seconds { return (.healthy, nil) }
    incident.healthySince = since
    return (.healthy, incident)
  case .unhealthy(let since, _):
    var incident = incident ?? RepairIncident(began: since)
    incident.healthySince = nil
    if let last = incident.attempts.last, now < last.graceEnds {
      return (
        .waiting("\(last.rung.rawValue) ran \(wholeSeconds(now - last.at))s ago; waiting up to \(wholeSeconds(last.graceEnds - now))s more for a fresh sign of life"),
        incident
      )
    }
    let tried = incident.tried
    let open = r.actions.filter { applicableRungs(state).contains($0) && !tried.contains($0) }
    if let gentle = open.first(where: { $0 != .replace }) {
      let due = since + r.repairAfter.seconds
      if now < due { return (.waiting("\(gentle.rawValue) is due in \(wholeSeconds((due - now).rounded(.up)))s (repair_after \(r.repairAfter))"), incident) }
      return (.act(gentle), incident)
    }
    if open.contains(.replace) {
      // Counted from the end of the last repair's grace: a repair gets its whole chance first.
      let due = (incident.attempts.last?.graceEnds ?? since) + r.unhealthyAfter.seconds
      if now < due {
        let after = incident.attempts.isEmpty ? "unhealthy_after \(r.unhealthyAfter)" : "unhealthy_after \(r.unhealthyAfter) after the last repair's grace"
        return (.waiting("replace is due in \(wholeSeconds((due - now).rounded(.up)))s (\(after))"), incident)
      }
      return (.act(.replace), incident)
    }
    let triedNames = incident.attempts.map(\.rung.rawValue)
    return (
      .exhausted(
        "no remediation action left (actions: \(r.actions.map(\.rawValue).joined(separator: ", "))"
          + (triedNames.isEmpty ? "" : "; tried: \(triedNames.joined(separator: ", "))") + "): reported, never rebuilt"),
      incident
    )
  }
}

/// The incident with `rung` recorded as tried now.
public func recordAttempt(_ rung: RepairRung, in incident: RepairIncident?, since: Double, remediation r: RemediationSpec, now: Double) -> RepairIncident {
  var incident = incident ?? RepairIncident(began: since)
  incident.attempts.append(RepairAttempt(rung: rung, at: now, graceEnds: now + r.repairGrace.seconds))
  return incident
}
