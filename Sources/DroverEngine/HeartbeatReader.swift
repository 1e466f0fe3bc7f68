import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Synchronization

/// Reads what a heal pass judges nodes by: libvirt's state (from the observation already made)
/// and each node's heartbeat, by domain UUID.
///
/// Costs: a console beat is a read of the node's log (a local file; through the host's
/// connection only where the host keeps consoles in its pool); an agent beat one libvirt call; an
/// SSH beat one `ssh` run, bounded by the beat interval. A node libvirt reports dead is not
/// asked anything. Nodes are read in parallel, 16 at a time.
public enum HeartbeatReader {
  public static func read(
    pools: [PoolSpec], candidates: [String: [String: TrustedRecords.Entry]], backends: [String: any HostBackend],
    consoleLog: @escaping @Sendable (String) -> String?, ssh: NodeSSHAccess?
  ) -> [String: NodeSignals] {
    var work: [(entry: TrustedRecords.Entry, pool: PoolSpec)] = []
    for pool in pools {
      for entry in (candidates[pool.name] ?? [:]).values { work.append((entry, pool)) }
    }
    let result = Mutex<[String: NodeSignals]>([:])
    BlockingFanOut.forEach(work.count, width: 16) { i in
      let (entry, pool) = work[i]
      let state = entry.domain.state
      var beat = HeartbeatSignal.none
      if let spec = pool.heartbeat, deadState(state) == nil {
        let ep = NodeEndpoint.of(
          domain: entry.domain, ownership: entry.ownership, host: entry.host, backend: backends[entry.host],
          consoleLog: consoleLog(entry.domain.name), ssh: ssh, onNetwork: pool.network != nil)
        beat = signal(spec, endpoint: ep, backend: backends[entry.host])
      }
      result.withLock { $0[entry.domain.uuid] = NodeSignals(state: state, heartbeat: beat) }
    }
    return result.withLock { $0 }
  }

  /// One node's beat as read now: answered, silent (the node did not answer), or unavailable (it
  /// could not be taken from here, which says nothing about the node).
  public static func signal(_ spec: HeartbeatSpec, endpoint ep: NodeEndpoint, backend: (any HostBackend)?) -> HeartbeatSignal {
    switch spec.source {
    case .console(let pattern):
      guard let regex = try? BoundedPattern(pattern) else { return .token(nil) }
      if let reader = backend as? ConsoleReading, reader.readsConsoles {
        return .token(reader.consoleTail(of: ep.name, maxBytes: ConsoleBound.tail).flatMap { consoleToken($0.bytes, base: $0.base, pattern: regex) })
      }
      guard let path = ep.consoleLog, let (bytes, base) = tail(of: path) else { return .token(nil) }
      return .token(consoleToken(bytes, base: base, pattern: regex))
    case .agent:
      guard let pinger = backend as? GuestAgentPinging else { return .unavailable("this host cannot reach guest agents") }
      return pinger.pingAgent(node: ep.name).map(HeartbeatSignal.silent) ?? .answered
    case .ssh(let command):
      let deadline = Date().addingTimeInterval(max(5, min(30, spec.interval.seconds)))
      switch HealthChecker().probeSSH(command, nil, node: ep, deadline: deadline) {
      case .healthy: return .answered
      case .notYet(let miss): return miss.saysNothingAboutTheNode ? .unavailable(miss.description) : .silent(miss.description)
      // Keys refused (a record or pins that contradict what is shown, a host at the address that
      // shows another key): the node could not be verified from here, which is no sign of death.
      case .never(let why): return .unavailable("its identity could not be verified: \(why)")
      }
    }
  }

  /// The last 64 KiB of a console log and the offset they start at (beats are recent lines:
  /// a log of days is not read whole every pass).
  static func tail(of path: String) -> ([UInt8], UInt64)? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let size = try? handle.seekToEnd() else { return nil }
    let base = size > ConsoleBound.tail ? size - ConsoleBound.tail : 0
    guard (try? handle.seek(toOffset: base)) != nil, let data = try? handle.readToEnd() else { return nil }
    return ([UInt8](data), base)
  }

  /// The last line matching `pattern`, with where it starts in the log: a new beat is a new
  /// token even when the guest prints the same words each time. Nil: no beat yet.
  static func consoleToken(_ bytes: [UInt8], base: UInt64, pattern: BoundedPattern) -> String? {
    ConsoleLines.last(in: bytes, matching: pattern).map { "\(base + UInt64($0.start)) \(Terminal.printable(String($0.line.prefix(120))))" }
  }
}
