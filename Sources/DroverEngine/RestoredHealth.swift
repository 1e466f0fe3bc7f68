import DroverModel
import Foundation

/// How a node resumed from its saved memory (a hibernated kept node a rollback starts again,
/// #45) is judged healthy. Owns: which of the pool's checks apply to a guest that did not boot,
/// and the wait for a fresh heartbeat. Must not: start, stop or change a node.
///
/// Why not the pool's checks as they are: a console pattern is a boot marker ("READY" once the
/// guest is up) that a restored guest never prints again — it did not boot, it carries on where
/// it was when it last passed those checks. What proves it is alive *now* is everything else:
/// the network, HTTP and command checks run as for any node, and a declared heartbeat must beat
/// anew after the restore.
enum RestoredHealth {
  /// The pool's checks a restored node runs: every one but console patterns.
  static func checks(_ all: [HealthCheckSpec]) -> [HealthCheckSpec] {
    all.filter { if case .console = $0.kind { false } else { true } }
  }

  /// Waits until `deadline` for a sign of life after the restore: a new console beat line (a
  /// change from what the console showed when the wait began), an agent or SSH answer. nil when
  /// one came (or the pool declares no heartbeat, or it cannot be taken from here: that says
  /// nothing about the node), else why not.
  static func freshBeat(
    _ spec: HeartbeatSpec?, endpoint ep: NodeEndpoint, backend: (any HostBackend)?, deadline: Date, shouldStop: @Sendable () -> Bool
  ) -> String? {
    guard let spec else { return nil }
    var first: String??
    let pause = min(1.0, max(0.1, spec.interval.seconds / 4))
    repeat {
      if ep.isRunning?() == false { return "it stopped after its memory was restored" }
      switch HeartbeatReader.signal(spec, endpoint: ep, backend: backend) {
      case .answered, .none, .unavailable: return nil
      case .silent: break
      case .token(let token):
        // The first read is what the console showed already; a beat is a later, other line.
        if let seen = first {
          if let token, token != seen { return nil }
        } else {
          first = .some(token)
        }
      }
      if shouldStop() { return "interrupted while waiting for a fresh heartbeat (\(spec.sourceName))" }
      Thread.sleep(forTimeInterval: pause)
    } while Date() < deadline
    return "no fresh heartbeat (\(spec.sourceName)) after its memory was restored"
  }
}
