import DroverBasics
import DroverModel
import Foundation
import Synchronization

/// Observes every host at once: one bulk read per host, hosts in parallel.
///
/// An unreachable host is recorded in `ObservedWorld.unreachable`, never treated as empty (an
/// empty answer would plan creates for nodes that exist). A host that stops answering is one too:
/// every operation of the host port has its deadline (`--call-timeout`), so each observation ends.
public enum WorldObserver {
  public static func observe(_ backends: [any HostBackend], unreachable: [String: String] = [:], detailed: Bool = false) -> ObservedWorld {
    let results = Mutex<[String: Result<ObservedHost, Error>]>([:])
    BlockingFanOut.forEach(backends.count, width: backends.count) { i in
      let backend = backends[i]
      let result = Result { try backend.observe(detailed: detailed) }
      results.withLock { $0[backend.uri] = result }
    }
    var world = ObservedWorld(unreachable: unreachable)
    for (uri, result) in results.withLock({ $0 }) {
      switch result {
      case .success(let host): world.hosts[uri] = host
      case .failure(let error):
        world.unreachable[uri] = Diagnostic.line(of: error)
      }
    }
    return world
  }
}
