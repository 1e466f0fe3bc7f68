import DroverModel
import Testing

@testable import DroverRollout

/// #44: the window decision as tables, driven by the clock passed in — across DST changes in two
/// time zones (a short and a long night), a window that wraps past midnight, an exclusion that
/// spans midnight, weekdays, and a node that can never fit.
@Suite struct MaintenanceWindowTests {
  static let hour = 3600.0

  @Test func aShortSpringNightInBerlinCannotHoldALongNode() {
    // 01:00–04:00 local; on 2026-03-29 the clocks jump from 02:00 to 03:00: two real hours.
    let w = MaintenanceWindow(start: 60, end: 240, timezone: "Europe/Berlin")
    let now = 1_774_740_600.0  // 2026-03-29 00:30 CET
    #expect(MaintenanceSchedule.decide(w, now: now, seconds: 1.5 * Self.hour) == .wait(until: 1_774_742_400, reason: "outside the window (every day 01:00–04:00 Europe/Berlin)"))
    // 2.5 h fits in a normal night (3 h) but not in this one (2 h): the next night, 2026-03-30 01:00 CEST.
    if case .wait(let until, _) = MaintenanceSchedule.decide(w, now: now, seconds: 2.5 * Self.hour) {
      #expect(until == 1_774_825_200)
    } else {
      Issue.record("2.5 h does not fit the spring-forward night")
    }
  }

  @Test func aLongAutumnNightInNewYorkHoldsWhatAShortOneCannot() {
    // 01:00–03:00 local; on 2026-11-01 01:00–02:00 happens twice: three real hours.
    let w = MaintenanceWindow(start: 60, end: 180, timezone: "America/New_York")
    let now = 1_793_419_200.0  // 2026-10-31 00:00 EDT
    guard case .wait(let until, _) = MaintenanceSchedule.decide(w, now: now, seconds: 2.5 * Self.hour) else {
      Issue.record("2.5 h must wait")
      return
    }
    #expect(until == 1_793_509_200, "not on 10-31 (2 h), but at 01:00 EDT on 11-01 (3 h)")
    #expect(MaintenanceSchedule.decide(w, now: 1_793_422_800, seconds: 1.5 * Self.hour) == .open, "10-31 01:00: 1.5 h fits")
    #expect(MaintenanceSchedule.decide(w, now: 1_793_509_200 + 2.5 * Self.hour, seconds: 0.4 * Self.hour) == .open, "the repeated hour is inside the window")
  }

  @Test func aWindowThatWrapsPastMidnight() {
    let w = MaintenanceWindow(start: 22 * 60, end: 2 * 60, timezone: "UTC")
    #expect(MaintenanceSchedule.decide(w, now: 1_796_686_200, seconds: Self.hour) == .open, "23:30 + 1 h ends before 02:00")
    guard case .wait(let until, let why) = MaintenanceSchedule.decide(w, now: 1_796_693_400, seconds: Self.hour) else {
      Issue.record("01:30 + 1 h ends past 02:00")
      return
    }
    #expect(until == 1_796_767_200 && why.contains("closes sooner"), "\(why)")
  }

  @Test func anExclusionSpanningMidnightPushesTheNodePastIt() {
    let holidays = MaintenanceWindow.Exclusion(from: 1_798_149_600, to: 1_798_178_400, reason: "christmas freeze")
    let w = MaintenanceWindow(start: 20 * 60, end: 8 * 60, timezone: "UTC", exclusions: [holidays])
    guard case .wait(let until, let why) = MaintenanceSchedule.decide(w, now: 1_798_147_800, seconds: Self.hour) else {
      Issue.record("21:30 + 1 h runs into the freeze at 22:00")
      return
    }
    #expect(until == 1_798_178_400 && why.contains("christmas freeze"), "starts when the freeze ends (06:00), inside the window until 08:00: \(why)")
    #expect(MaintenanceSchedule.decide(w, now: 1_798_147_800, seconds: 0.4 * Self.hour) == .open, "21:30 + 24 min ends before the freeze")
  }

  @Test func onlyOnTheDaysItNames() {
    let w = MaintenanceWindow(days: [6], start: 120, end: 300, timezone: "UTC")  // Saturdays 02:00–05:00
    guard case .wait(let until, _) = MaintenanceSchedule.decide(w, now: 1_796_686_200, seconds: Self.hour) else {
      Issue.record("a Monday is not a Saturday")
      return
    }
    #expect(until == 1_797_040_800, "Saturday 2026-12-12 02:00")
  }

  @Test func aNodeLongerThanTheWindowNeverFitsAndSaysSo() {
    let w = MaintenanceWindow(start: 60, end: 120, timezone: "UTC")
    guard case .never(let why) = MaintenanceSchedule.decide(w, now: 0, seconds: 2 * Self.hour) else {
      Issue.record("2 h never fits 1 h")
      return
    }
    #expect(why.contains("fits a node of ~7200s"))
    if case .never = MaintenanceSchedule.decide(MaintenanceWindow(start: 60, end: 120, timezone: "Mars/Olympus"), now: 0, seconds: 1) {} else {
      Issue.record("an unknown zone is never open")
    }
  }

  @Test func theNextNodeIsPredictedFromThePoolsOwnHistory() {
    #expect(MaintenanceSchedule.predictedSeconds(history: [], fallback: 12) == 12)
    #expect(MaintenanceSchedule.predictedSeconds(history: [10, 11, 12, 13, 14, 15, 16, 17, 18, 100], fallback: 12) == 18, "the 90th percentile")
    #expect(MaintenanceSchedule.predictedSeconds(history: [30], fallback: 12) == 30)
  }

  static let budget = BurnRateGate(
    good: "g", total: "t", objective: 0.999,
    rules: [BurnRule(long: .minutes(60), short: .minutes(5), factor: 14.4), BurnRule(long: .minutes(360), short: .minutes(30), factor: 6)])

  @Test func theBurnRateHoldsAWaveOnlyWhenBothWindowsOfARuleBurn() {
    #expect(BurnRate.rate(good: 999, total: 1000, objective: 0.999) == 1)
    #expect(BurnRate.rate(good: 0, total: 0, objective: 0.999) == nil, "no traffic: unknown")
    let calm: [TimeSpan: Double?] = [.minutes(60): 1, .minutes(5): 20, .minutes(360): 0.5, .minutes(30): 0.5]
    if case .proceed = BurnRate.decide(Self.budget, rates: calm) {} else { Issue.record("a short spike alone does not hold the wave") }
    let burning: [TimeSpan: Double?] = [.minutes(60): 16.2, .minutes(5): 15, .minutes(360): 2, .minutes(30): 2]
    #expect(BurnRate.decide(Self.budget, rates: burning) == .wait("burn rate 16.2× over 1h and 15.0× over 5m > 14.4×"))
    let unknown: [TimeSpan: Double?] = [.minutes(60): nil, .minutes(5): 1, .minutes(360): 1, .minutes(30): 1]
    if case .wait(let why) = BurnRate.decide(Self.budget, rates: unknown) { #expect(why.contains("unknown")) } else { Issue.record("unknown holds the wave") }
    #expect(BurnRate.windows(Self.budget) == [.minutes(60), .minutes(5), .minutes(360), .minutes(30)])
    #expect(TimeSpan.minutes(60).promQL == "1h" && TimeSpan.minutes(5).promQL == "5m" && TimeSpan.seconds(90).promQL == "90s")
  }
}
