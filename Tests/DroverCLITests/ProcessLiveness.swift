import Foundation

/// Whether a process has ended: the event a test of a timeout waits on, instead of a wall time.
enum ProcessLiveness {
  /// True once `pid` no longer exists or is a zombie (dead, not yet reaped by its new parent).
  /// Polls for up to `within` seconds: a SIGKILL is delivered asynchronously.
  static func isGone(_ pid: Int32, within: Double = 5) -> Bool {
    let end = Date().addingTimeInterval(within)
    repeat {
      if kill(pid, 0) != 0 && errno == ESRCH { return true }
      let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
      if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") { return true }
      Thread.sleep(forTimeInterval: 0.05)
    } while Date() < end
    return false
  }
}
