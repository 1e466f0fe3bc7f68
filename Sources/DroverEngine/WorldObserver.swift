import DroverBasics
import DroverModel
import Foundation
import Synchronization

/// Observes every host at once: one bulk read per host, hosts in parallel.
///
/// An unreachable host is recorded in `ObservedWorld.unreachable`, never treated as empty (an
/// empty answer would plan creates for nodes that exist).
public enum WorldObserver {
  /// - Parameter deadline: seconds each host has to answer; a host still in a call then (a frozen
  ///   daemon, a relay that stopped relaying) is recorded as unreachable, naming the call, and its
  ///   thread is abandoned: the command goes on without it and fails.
  public static func observe(
    _ backends: [any HostBackend], unreachable: [String: String] = [:], detailed: Bool = false, deadline: Double = 30
  ) -> ObservedWorld {
    let results = Mutex<[String: Result<ObservedHost, Error>]>([:])
    let finished = DispatchSemaphore(value: 0)
    for backend in backends {
      // Detached, not joined: a call that never returns must not hold the command.
      let thread = Thread {
        let result = Result { try backend.observe(detailed: detailed) }
        results.withLock { $0[backend.uri] = result }
        finished.signal()
      }
      thread.stackSize = 1 << 20
      thread.start()
    }
    let end = DispatchTime.now() + deadline
    for _ in backends {
      if finished.wait(timeout: end) == .timedOut { break }
    }
    var world = ObservedWorld(unreachable: unreachable)
    let done = results.withLock { $0 }
    for backend in backends {
      switch done[backend.uri] {
      case .success(let host)?: world.hosts[backend.uri] = host
      case .failure(let error)?:
        world.unreachable[backend.uri] = (error as? DiagnosticConvertible)?.diagnostics.first?.message ?? "\(error)"
      case nil:
        world.unreachable[backend.uri] = "reading its domains: no answer within \(Int(deadline)) s (--call-timeout); nothing more is done on it"
      }
    }
    return world
  }
}
