import DroverModel

/// What one heal pass read about a node right now, before any judgement.
public struct NodeSignals: Sendable, Hashable {
  /// libvirt's state of the domain (`running`, `shutoff`, `crashed`, `paused`…).
  public var state: String
  public var heartbeat: HeartbeatSignal

  public init(state: String, heartbeat: HeartbeatSignal) {
    self.state = state
    self.heartbeat = heartbeat
  }
}

/// A heartbeat as read once.
public enum HeartbeatSignal: Sendable, Hashable {
  /// The pool declares no heartbeat.
  case none
  /// Console: the last beat line and how many there were (nil: none yet). A beat is a change.
  case token(String?)
  /// Agent or SSH: it answered now.
  case answered
  /// Agent or SSH: no answer, with why.
  case silent(String)
  /// The beat could not be taken from here (no pinned host key on this machine, no SSH key, a
  /// local error): says nothing about the node — never a missed beat, never a reason to repair.
  case unavailable(String)
}

/// What Drover remembers of a node between passes (the heal ledger): when its beat last
/// changed, and since when it has been unhealthy. Keyed by the domain's UUID: a replacement
/// starts afresh.
public struct NodeMemory: Sendable, Hashable, Codable {
  public var uuid: String
  /// Where the node was last seen and under which name (an unreachable host's nodes are
  /// reported "unknown" by these).
  public var host: String?
  public var name: String?
  /// The last console token seen, and when it was first seen (≈ the last beat).
  public var token: String?
  public var lastBeat: Double
  public var unhealthySince: Double?
  public var reason: String?
  /// The first pass that found the beat silent: silence is never dated before a pass saw it
  /// (a timer's pass after an hour does not find a node "unhealthy for an hour" on one probe).
  public var silentSeen: Double?
  /// The heartbeat source the beats were read from: another source starts afresh.
  public var source: String?
  /// The node's open incident: which repair rungs were tried, and when (`RepairLadder`).
  public var incident: RepairIncident?

  public init(uuid: String, token: String? = nil, lastBeat: Double, unhealthySince: Double? = nil, reason: String? = nil) {
    self.uuid = uuid
    self.token = token
    self.lastBeat = lastBeat
    self.unhealthySince = unhealthySince
    self.reason = reason
  }
}

/// A node's judged health.
public enum NodeCondition: Sendable, Hashable, Codable {
  case healthy
  /// Unhealthy since `since` (seconds since 1970), for `reason`.
  case unhealthy(since: Double, reason: String)
  /// Its host could not be read: never replaced for that alone.
  case unknown(reason: String)

  public var isUnhealthy: Bool { if case .unhealthy = self { true } else { false } }
}

/// libvirt states of a domain that is not doing its work: it was destroyed or powered off, its
/// QEMU died (libvirt then reports it shut off or crashed), or it was paused.
public func deadState(_ state: String) -> String? {
  switch state {
  case "running", "blocked": return nil
  case "shutoff": return "shut off (its QEMU process is gone)"
  case "crashed": return "crashed"
  case "paused": return "paused"
  case "shutdown": return "shutting down"
  case "pmsuspended": return "suspended by the guest"
  default: return "in libvirt state \(state)"
  }
}

/// Judges one node from what was read now and what was remembered; returns the judgement and
/// what to remember. Pure: `now` is given (golden sequences run it on a simulated clock).
///
/// A beat is a change of the console token, or an answer (agent, SSH). A node with no memory
/// starts its grace now (a fresh node, or a first pass): it is unhealthy only once it has been
/// silent for `interval × missed`, and it has been unhealthy since that moment.
public func assessNode(
  _ signals: NodeSignals, uuid: String, heartbeat: HeartbeatSpec?, memory: NodeMemory?, now: Double
) -> (condition: NodeCondition, memory: NodeMemory) {
  // Another domain (a replacement) or another heartbeat source (the spec changed) starts afresh.
  let remembered = memory.flatMap { $0.uuid == uuid && $0.source == heartbeat?.sourceName ? $0 : nil }
  var m = remembered ?? NodeMemory(uuid: uuid, lastBeat: now)
  m.source = heartbeat?.sourceName
  switch signals.heartbeat {
  case .none: m.lastBeat = now
  case .token(let token):
    // A read that found no beat (a log that could not be read, or beats pushed out of the
    // window by other output) tells nothing: only a new beat line is a beat.
    if let token, token != m.token {
      m.token = token
      m.lastBeat = now
    }
  case .answered: m.lastBeat = now
  case .silent, .unavailable: break
  }
  var reason: String?
  var since = now
  if let dead = deadState(signals.state) {
    reason = dead
    m.silentSeen = nil
  } else if case .unavailable(let why) = signals.heartbeat {
    // Nothing was learnt: the node is unknown this pass, as a node on an unreadable host is.
    // Its memory stays as it was (its silence is not dated by a beat nobody could take).
    let kept = remembered ?? m
    return (.unknown(reason: "its heartbeat could not be taken from here: \(why)"), kept)
  } else if let spec = heartbeat {
    let silentFor = now - m.lastBeat
    if silentFor >= spec.silence.seconds {
      let seen = m.silentSeen ?? now
      m.silentSeen = seen
      var why = "no heartbeat (\(spec.sourceName)) for \(wholeSeconds(silentFor))s, \(spec.missed) missed at \(spec.interval)"
      if case .silent(let detail) = signals.heartbeat { why += ": \(detail)" }
      reason = why
      since = max(m.lastBeat + spec.silence.seconds, seen)
    } else {
      m.silentSeen = nil
    }
  }
  guard let reason else {
    m.unhealthySince = nil
    m.reason = nil
    return (.healthy, m)
  }
  // Unhealthy since the earliest moment known: what was remembered, or when it began.
  let start = min(m.unhealthySince ?? since, since)
  m.unhealthySince = start
  m.reason = reason
  return (.unhealthy(since: start, reason: reason), m)
}

/// Whole seconds of a duration for messages, whatever the duration (an edited ledger or journal
/// can hold any number: this never traps).
public func wholeSeconds(_ seconds: Double) -> Int {
  guard seconds.isFinite else { return 0 }
  return Int(min(max(seconds.rounded(), -1e12), 1e12))
}
