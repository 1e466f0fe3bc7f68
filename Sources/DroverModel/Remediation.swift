/// `heartbeat:` — how a pool's nodes say they are alive between deployments, beside what libvirt
/// already says (shut off, crashed, paused).
///
/// Why a beat and not a health check: health checks answer "did this node come up"; a node that
/// came up and later hangs (a wedged kernel, a full disk, a dead service) still runs as far as
/// libvirt knows. A beat that stops is the only sign of that.
public struct HeartbeatSpec: Sendable, Hashable, Codable {
  public enum Source: Sendable, Hashable, Codable {
    /// A line matching `pattern` that the guest writes to its serial console every `interval`
    /// (the console log lives on the host: nothing runs inside the guest to read it).
    case console(pattern: String)
    /// The QEMU guest agent's `guest-ping` through libvirt (images that run qemu-guest-agent).
    case agent
    /// `command` run on the node over SSH as Drover's user; exit 0 is a beat.
    case ssh(command: String)
  }

  public var source: Source
  public var interval: TimeSpan
  /// Beats missed in a row before the node counts as unhealthy.
  public var missed: Int

  public init(source: Source, interval: TimeSpan = .seconds(10), missed: Int = 3) {
    self.source = source
    self.interval = interval
    self.missed = missed
  }

  /// How long a node may go without a beat: `interval × missed`.
  public var silence: TimeSpan { TimeSpan(milliseconds: interval.milliseconds * missed) }

  /// Short name for messages and metrics labels.
  public var sourceName: String {
    switch source {
    case .console: return "console"
    case .agent: return "agent"
    case .ssh: return "ssh"
    }
  }
}

/// One rung of heal's remediation ladder, gentlest first. Only `replace` discards a disk.
public enum RepairRung: String, Sendable, Hashable, Codable, CaseIterable {
  /// A paused node is resumed (`virsh resume`).
  case resume
  /// A shut-off or crashed node is started on its own disk.
  case start
  /// A node that runs but does not answer is power-cycled (destroy + start), same disk.
  case reset
  /// A new node from the old one's record; the old one and its disk are deleted.
  case replace

  /// Whether this rung deletes the node's disk.
  public var discardsDisk: Bool { self == .replace }
  /// Whether this rung interrupts a running guest or removes a node: guarded by `max_unhealthy`,
  /// host outages, `max_in_flight` and `cooldown` (resume and start only bring a node back).
  public var isDisruptive: Bool { self == .reset || self == .replace }
}

/// `remediation:` — when and how `drover heal` repairs a pool's unhealthy nodes, after
/// Cluster API's MachineHealthCheck (`unhealthy_after` ≈ its condition timeouts, `max_unhealthy`
/// its short-circuit) and its remediation strategies (gentlest first).
public struct RemediationSpec: Sendable, Hashable, Codable {
  /// How long a node stays unhealthy before it is replaced (a reboot or a short stall is not a death),
  /// counted from the end of the last repair's grace when one was tried.
  public var unhealthyAfter: TimeSpan
  /// How long a node stays unhealthy before the first repair rung (resume, start, reset) runs.
  public var repairAfter: TimeSpan = .seconds(0)
  /// How long a repair waits for a fresh sign of life before the next rung may run.
  public var repairGrace: TimeSpan = .seconds(120)
  /// The rungs heal may use, in ladder order; without `replace` a node is reported, never rebuilt.
  public var actions: [RepairRung] = RepairRung.allCases
  /// More unhealthy nodes than this at once is a wider outage (the network, the host, the image):
  /// nothing is replaced. A count or a percentage of `replicas` (rounded down).
  public var maxUnhealthy: NodeQuantity
  /// Nodes replaced at once, and at most per pass.
  public var maxInFlight: Int
  /// After a heal of this pool ends, no new one starts for this long.
  public var cooldown: TimeSpan
  /// A `protect: true` pool is only reported unless this is set.
  public var remediateProtected: Bool

  public init(
    unhealthyAfter: TimeSpan = .minutes(5), maxUnhealthy: NodeQuantity = .percent(40), maxInFlight: Int = 1, cooldown: TimeSpan = .seconds(0),
    remediateProtected: Bool = false
  ) {
    self.unhealthyAfter = unhealthyAfter
    self.maxUnhealthy = maxUnhealthy
    self.maxInFlight = maxInFlight
    self.cooldown = cooldown
    self.remediateProtected = remediateProtected
  }
}
