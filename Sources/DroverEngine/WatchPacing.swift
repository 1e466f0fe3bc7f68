/// When `drover watch` runs its next pass, as a pure function of a clock reading.
///
/// Why: a loop that sleeps "until the wall clock says `interval` has passed" stalls for as long as
/// the clock was stepped back (an NTP correction, a VM resumed). Watch reads the monotonic clock,
/// and this clamps besides: whatever the clock says, the wait before the next pass is never longer
/// than `interval` and never negative.
public enum WatchPacing {
  /// Seconds still to wait before the next pass, for a pass that began at `began` (`now` on the
  /// same clock).
  public static func remaining(began: Double, now: Double, interval: Double) -> Double {
    let elapsed = now - began
    guard elapsed.isFinite, elapsed >= 0 else { return interval }  // stepped back: one interval, no more
    return max(0, min(interval, interval - elapsed))
  }
}
