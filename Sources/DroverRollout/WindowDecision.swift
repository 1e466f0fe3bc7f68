import DroverModel
import Foundation

/// Whether a node may start now under a maintenance window, and if not, when. Pure: the clock is
/// an argument, the zone's rules come from the system's tz database (DST included).
public enum WindowDecision: Sendable, Hashable {
  /// The node may start now: it finishes inside the window and outside every exclusion.
  case open
  /// Wait until `until` (seconds since 1970): the earliest time a node of this duration fits.
  case wait(until: Double, reason: String)
  /// Nothing fits within a year (a window shorter than the node's duration, exclusions over all).
  case never(String)
}

public enum MaintenanceSchedule {
  /// How far ahead a fitting slot is looked for.
  public static let horizonDays = 400

  /// The window's openings that overlap `[from, from + horizon)`, as `[start, end)` instants,
  /// in order: each day's local `start` (on a day `days` allows) to its `end` (the next day's
  /// when it wraps past midnight). A local time a DST change skips moves forward with the clock
  /// (02:30 on a spring-forward night is 03:30); one it repeats is its first occurrence.
  public static func openings(_ w: MaintenanceWindow, from: Double, days horizon: Int = horizonDays) -> [(start: Double, end: Double)] {
    guard let zone = TimeZone(identifier: w.timezone) else { return [] }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let begin = Date(timeIntervalSince1970: from)
    // From the day before: yesterday's window may wrap into today.
    guard let first = calendar.date(byAdding: .day, value: -1, to: calendar.startOfDay(for: begin)) else { return [] }
    var result: [(Double, Double)] = []
    for offset in 0...horizon {
      guard let day = calendar.date(byAdding: .day, value: offset, to: first) else { continue }
      let weekday = (calendar.component(.weekday, from: day) + 5) % 7 + 1  // Foundation: 1 = Sunday
      if !w.days.isEmpty && !w.days.contains(weekday) { continue }
      guard let s = localTime(w.start, on: day, calendar), let endDay = calendar.date(byAdding: .day, value: w.end <= w.start ? 1 : 0, to: day),
        let e = localTime(w.end, on: endDay, calendar)
      else { continue }
      if e.timeIntervalSince1970 > from && e > s { result.append((s.timeIntervalSince1970, e.timeIntervalSince1970)) }
    }
    return result
  }

  /// `minutes` after midnight on `day`'s date, in the calendar's zone.
  static func localTime(_ minutes: Int, on day: Date, _ calendar: Calendar) -> Date? {
    var c = calendar.dateComponents([.year, .month, .day], from: day)
    c.hour = minutes / 60
    c.minute = minutes % 60
    c.second = 0
    return calendar.date(from: c)
  }

  /// Whether a node taking `seconds` may start at `now`, or when it may.
  public static func decide(_ w: MaintenanceWindow, now: Double, seconds: Double) -> WindowDecision {
    guard TimeZone(identifier: w.timezone) != nil else { return .never("time zone \(w.timezone) is not in this system's tz database") }
    let all = openings(w, from: now)
    let inside = all.contains { now >= $0.start && now < $0.end }
    for (s, e) in all {
      var t = max(s, now)
      // Past every exclusion the slot overlaps (they may overlap each other).
      var moved = true
      while moved {
        moved = false
        for x in w.exclusions where t < x.to && t + seconds > x.from {
          t = x.to
          moved = true
        }
      }
      guard t + seconds <= e else { continue }
      if t <= now { return .open }
      let blocking = w.exclusions.first { now < $0.to && now + seconds > $0.from }
      let why =
        blocking.map { "exclusion \($0.reason)" }
        ?? (inside ? "a node takes ~\(Int(seconds.rounded()))s and the window closes sooner" : "outside the window (\(w.description))")
      return .wait(until: t, reason: why)
    }
    return .never("no opening of \(w.description) fits a node of ~\(Int(seconds.rounded()))s within \(horizonDays) days")
  }

  /// The 90th percentile of the pool's past node replacements (seconds), or `fallback` without
  /// history: what the next node is predicted to take.
  public static func predictedSeconds(history: [Double], fallback: Double) -> Double {
    let sorted = history.filter { $0.isFinite && $0 >= 0 }.sorted()
    guard !sorted.isEmpty else { return fallback }
    let rank = Int((0.9 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
  }
}
