import DroverModel
import Foundation

/// Why a rollout held a batch back (#44): outside its maintenance window, or the service's error
/// budget burning too fast. Journaled (sealed) when the wait begins and when it ends, so
/// `rollout status`, `apply --json` and the metrics say what it waited for and how long.
public struct Deferral: Sendable, Hashable, Codable {
  public enum Kind: String, Sendable, Hashable, Codable {
    case window
    case burnRate = "burn-rate"
  }
  public enum Outcome: String, Sendable, Hashable, Codable {
    /// The window opened or the burn rate fell: the batch went on.
    case proceeded
    /// `max_wait` passed (or the wait could not end within it): the rollout paused.
    case paused
    /// Ctrl-C, a pause or an abort request ended the wait.
    case interrupted
  }

  public var kind: Kind
  public var reason: String
  public var wave: Int
  /// When the wait began (seconds since 1970).
  public var began: Double
  /// When the window opens (a window's wait); nil for a burn rate, which is measured again.
  public var until: Double?
  /// Set when the wait ended.
  public var outcome: Outcome?
  public var waitedSeconds: Double?

  public init(kind: Kind, reason: String, wave: Int, began: Double, until: Double? = nil) {
    self.kind = kind
    self.reason = reason
    self.wave = wave
    self.began = began
    self.until = until
  }

  /// The journal's text of it (one line of JSON).
  public var journalText: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? reason
  }

  public init?(journalText: String) {
    guard let d = try? JSONDecoder().decode(Deferral.self, from: Data(journalText.utf8)), d.began.isFinite, d.until?.isFinite ?? true else { return nil }
    self = d
  }

  /// What a person reads: "waiting for the window (opens in 3 h 12 m)", "waiting: burn rate …".
  public func waitingText(now: Double) -> String {
    switch kind {
    case .window:
      guard let until else { return "waiting for the maintenance window: \(reason)" }
      return "waiting for the window (opens in \(Self.span(max(0, until - now)))): \(reason)"
    case .burnRate: return "waiting: \(reason) (for \(Self.span(max(0, now - began))))"
    }
  }

  /// `3 h 12 m`, `4 m 10 s`, `7 s`.
  public static func span(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 86_400 { return "\(s / 86_400) d \(s % 86_400 / 3600) h" }
    if s >= 3600 { return "\(s / 3600) h \(s % 3600 / 60) m" }
    if s >= 60 { return "\(s / 60) m \(s % 60) s" }
    return "\(s) s"
  }
}

/// What the schedule gates say about the next batch.
public enum ScheduleStep: Sendable, Hashable {
  case go
  /// Wait `seconds` (then decide again): the deferral to journal if it is a new one.
  case wait(seconds: Double, kind: Deferral.Kind, reason: String, until: Double?)
  case pause(kind: Deferral.Kind, reason: String)
}

/// The gates before a batch of a rollout (#44), decided from plain values: the burn rate (already
/// measured, only when the batch begins a wave) first, then the window with the batch's predicted
/// duration. Pure: the clock is `now`; `waitingSince` is when the current wait of that kind began.
///
/// - A burn rate over its rule waits, measured again every `burnPollSeconds`, until it falls or
///   `max_wait` has passed since the wait began: then it pauses.
/// - A closed window waits until it opens when that is within `max_wait` of the wait's start;
///   otherwise it pauses at once (waiting only to pause later helps nobody). A node that would not
///   fit before the window closes waits for the next opening the same way.
/// - A heal never waits (`watch` must stay responsive): it pauses, and the next pass decides again.
public enum ScheduleGate {
  /// How often a held wave's burn rate is measured again.
  public static let burnPollSeconds = 30.0

  public static func decide(
    policy: RolloutPolicy, kind: RolloutKind, burn: BurnDecision?, now: Double, predictedSeconds: Double, waitingSince: [Deferral.Kind: Double]
  ) -> ScheduleStep {
    if let gate = policy.burnRate, case .wait(let why) = burn {
      let since = waitingSince[.burnRate] ?? now
      let limit = kind == .heal ? 0 : gate.maxWait.seconds
      if now - since >= limit {
        return .pause(kind: .burnRate, reason: limit == 0 ? "error budget: \(why)" : "error budget: \(why), still after max_wait \(gate.maxWait)")
      }
      return .wait(seconds: min(burnPollSeconds, limit - (now - since)), kind: .burnRate, reason: why, until: nil)
    }
    guard let window = policy.window else { return .go }
    switch MaintenanceSchedule.decide(window, now: now, seconds: predictedSeconds) {
    case .open: return .go
    case .never(let why): return .pause(kind: .window, reason: "maintenance window: \(why)")
    case .wait(let until, let why):
      let since = waitingSince[.window] ?? now
      let limit = kind == .heal ? 0 : window.maxWait.seconds
      if until - since > limit {
        let when = Deferral.span(until - now)
        return .pause(kind: .window, reason: "maintenance window: \(why); it opens in \(when)\(limit == 0 ? "" : ", beyond max_wait \(window.maxWait)")")
      }
      return .wait(seconds: until - now, kind: .window, reason: why, until: until)
    }
  }
}
