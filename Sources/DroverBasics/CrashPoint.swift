import Foundation
import Synchronization

/// Fault injection for tests, outside the journal: `DROVER_CRASH_AT=<point>[#n]` kills the process
/// with SIGKILL the n-th time it reaches `point` (for example `overlay-created`, between creating
/// a node's overlay and defining its domain, or `domain-undefined`, between undefining a domain
/// and deleting its overlay). Unset, it costs one dictionary lookup at start-up.
public enum CrashPoint {
  static let target: (name: String, count: Int)? = {
    guard let spec = ProcessInfo.processInfo.environment["DROVER_CRASH_AT"], !spec.isEmpty else { return nil }
    let parts = spec.split(separator: "#")
    return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
  }()
  static let seen = Mutex(0)

  public static func reached(_ name: String) {
    guard let target, target.name == name else { return }
    let n = seen.withLock {
      $0 += 1
      return $0
    }
    if n == target.count { kill(getpid(), SIGKILL) }
  }
}
