import DroverBasics
import DroverModel
import Foundation

/// Observes every host at once: one bulk read per host, hosts in parallel.
///
/// An unreachable host is recorded in `ObservedWorld.unreachable`, never treated as empty (an
/// empty answer would plan creates for nodes that exist).
public enum WorldObserver {
  public static func observe(_ backends: [any HostBackend], unreachable: [String: String] = [:], detailed: Bool = false) -> ObservedWorld {
    let results = LockedDictionary<String, Result<ObservedHost, Error>>()
    DispatchQueue.concurrentPerform(iterations: backends.count) { i in
      let backend = backends[i]
      results[backend.uri] = Result { try backend.observe(detailed: detailed) }
    }
    var world = ObservedWorld(unreachable: unreachable)
    for (uri, result) in results.snapshot {
      switch result {
      case .success(let host): world.hosts[uri] = host
      case .failure(let error):
        world.unreachable[uri] = (error as? DiagnosticConvertible)?.diagnostics.first?.message ?? "\(error)"
      }
    }
    return world
  }
}

/// A dictionary behind a lock, for results gathered by concurrent workers.
final class LockedDictionary<Key: Hashable, Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var storage: [Key: Value] = [:]

  subscript(key: Key) -> Value? {
    get { lock.withLock { storage[key] } }
    set { lock.withLock { storage[key] = newValue } }
  }

  var snapshot: [Key: Value] { lock.withLock { storage } }
}
