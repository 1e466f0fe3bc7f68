import DroverEngine
import Testing

/// #37: watch's wait before its next pass, over an injected clock: a clock stepped backwards (or
/// forwards by hours) never stalls the loop beyond one interval.
@Suite struct WatchPacingTests {
  static let table: [(began: Double, now: Double, interval: Double, wait: Double)] = [
    (100, 100, 30, 30),  // just ran
    (100, 110, 30, 20),
    (100, 130, 30, 0),  // due
    (100, 5000, 30, 0),  // a long pass: the next one at once
    (100, 40, 30, 30),  // stepped back 60 s: one interval, not 90 s
    (1e9, 0, 30, 30),  // stepped back decades
    (100, .nan, 30, 30),
  ]

  @Test(arguments: table)
  func waitIsBetweenZeroAndOneInterval(_ row: (began: Double, now: Double, interval: Double, wait: Double)) {
    #expect(WatchPacing.remaining(began: row.began, now: row.now, interval: row.interval) == row.wait)
  }

  /// Watch's loop over a clock that jumps back an hour during the third pass: the wait is taken
  /// once per pass and slept by count, so every pass still follows the previous within an interval.
  @Test func aLoopOverASteppedClockKeepsPassing() {
    var clock = 0.0
    var waits: [Double] = []
    for pass in 1...6 {
      let began = clock
      clock += 2  // the pass's own work
      if pass == 3 { clock -= 3600 }
      let wait = WatchPacing.remaining(began: began, now: clock, interval: 10)
      waits.append(wait)
      clock += wait
    }
    #expect(waits == [8, 8, 10, 8, 8, 8], "\(waits)")
  }
}
