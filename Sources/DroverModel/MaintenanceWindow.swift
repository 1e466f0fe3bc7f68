import Foundation

/// When a pool's nodes may be replaced (#44): a recurring window in a time zone (`days`, `start`,
/// `end`; an end at or before the start runs past midnight), minus exclusions. Checked before
/// each node with that node's predicted duration, so a node that could not finish inside the
/// window waits for the next one (kured checks only before it starts, and a long drain runs past
/// the end). Repairs (resume, start, reset) are never deferred by it.
public struct MaintenanceWindow: Sendable, Hashable, Codable {
  /// ISO weekdays, 1 (Monday) … 7 (Sunday), the days a window *starts* on; empty: every day.
  public var days: [Int]
  /// Minutes after local midnight.
  public var start: Int
  public var end: Int
  /// An IANA zone (`Europe/Berlin`), read from the system's tz database.
  public var timezone: String
  public var exclusions: [Exclusion]
  /// How long a rollout waits in-process for the window to open (or an exclusion to pass) before
  /// it pauses with the reason (`max_wait`; 0: pause at once). A wait the window would not end
  /// within it pauses at once: waiting only to pause later helps nobody.
  public var maxWait: TimeSpan = Self.defaultMaxWait

  /// A day: a rollout started in the afternoon waits for tonight's window.
  public static let defaultMaxWait = TimeSpan.minutes(24 * 60)

  public struct Exclusion: Sendable, Hashable, Codable {
    /// Seconds since 1970 (written as local times of the window's zone, or with an offset).
    public var from: Double
    public var to: Double
    public var reason: String

    public init(from: Double, to: Double, reason: String) {
      self.from = from
      self.to = to
      self.reason = reason
    }
  }

  public init(days: [Int] = [], start: Int, end: Int, timezone: String = "UTC", exclusions: [Exclusion] = [], maxWait: TimeSpan = Self.defaultMaxWait) {
    self.maxWait = maxWait
    self.days = days
    self.start = start
    self.end = end
    self.timezone = timezone
    self.exclusions = exclusions
  }

  public static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

  public var description: String {
    func hm(_ m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
    let d = days.isEmpty ? "every day" : days.map { Self.dayNames[$0 - 1] }.joined(separator: ",")
    return "\(d) \(hm(start))–\(hm(end)) \(timezone)" + (exclusions.isEmpty ? "" : ", \(exclusions.count) exclusion\(exclusions.count == 1 ? "" : "s")")
  }
}

/// How a moment is written for people: `2026-12-08 02:00 Europe/Berlin` (UTC when the zone is
/// unknown). One formatter for plan lines, windows and kept nodes.
public enum TimeText {
  public static func local(_ t: Double, _ zone: String) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: zone) ?? TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm"
    return "\(f.string(from: Date(timeIntervalSince1970: t))) \(zone)"
  }
}
