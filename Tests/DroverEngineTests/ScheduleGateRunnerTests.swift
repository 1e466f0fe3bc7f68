import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverPrometheus
import DroverRollout
import Foundation
import Synchronization
import Testing

/// A clock a test moves: `sleep` advances it, and each node's create step takes `perNode`.
final class SteppedClock: @unchecked Sendable {
  private let time: Mutex<Double>
  let perNode: Double
  init(_ start: Double, perNode: Double = 0) {
    time = Mutex(start)
    self.perNode = perNode
  }
  var now: Double { time.withLock { $0 } }
  func advance(_ s: Double) { time.withLock { $0 += s } }
}

/// #44 in the runner, on the fake host with a real journal, decided by an injected clock: a
/// window that closes mid-rollout holds the node that could not finish until the next opening; a
/// window beyond `max_wait` pauses before any node; and the burn rate read from a **real
/// Prometheus** (the fixture exporter's counters) holds a wave until it falls, or pauses.
@Suite(.serialized) struct ScheduleGateRunnerTests {
  typealias R = RolloutRunnerFakeHostTests
  /// 2026-12-07 00:00 UTC.
  static let midnight = 1_796_601_600.0
  static let hour = 3600.0

  static func fleet(window: MaintenanceWindow? = nil, burn: BurnRateGate? = nil) throws -> R.Fleet {
    let fleet = try R.Fleet(replicas: 3, strategy: R.surge)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    fleet.pool.window = window
    fleet.pool.burnRate = burn
    return fleet
  }

  /// Runs the plan's rollout on `clock`: every step of a node's create takes `perNode` seconds.
  static func run(
    _ fleet: R.Fleet, clock: SteppedClock, metrics: (any MetricsQuerying)? = nil, estimate: Double? = nil, realSleep: Double = 0,
    onEvent: @escaping @Sendable (RolloutEvent) -> Void = { _ in }
  ) throws -> RolloutOutcome {
    var preview = try #require(try fleet.plan().rollouts.first)
    if let estimate { preview.policy.estimatedNodeSeconds = estimate }
    return try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(
        prober: FakeProber(), drainer: fleet.drainer,
        onEvent: { e in
          if e.kind == .step, e.step == "create" { clock.advance(clock.perNode) }
          onEvent(e)
        },
        sleep: { s in
          if realSleep > 0 { Thread.sleep(forTimeInterval: realSleep) }
          clock.advance(s)
        }, metrics: metrics, now: { clock.now })
    ).run(preview)
  }

  @Test func aWindowClosingMidRolloutHoldsTheNodeThatCouldNotFinishUntilTheNextOne() throws {
    // 02:00–03:00 UTC every day; a node takes 5 minutes; the rollout starts at 02:51.
    let window = MaintenanceWindow(start: 120, end: 180, timezone: "UTC")
    let fleet = try Self.fleet(window: window)
    let clock = SteppedClock(Self.midnight + 2 * Self.hour + 51 * 60, perNode: 300)
    let outcome = try Self.run(fleet, clock: clock, estimate: 300)
    #expect(outcome.state.status == .completed, "\(outcome.summary)")
    // The canary ran 02:51–02:56; web-2 (would end 03:01) waited for tomorrow's 02:00.
    let records = try fleet.journal().records()
    let firstSteps = Dictionary(grouping: records.filter { $0.event == .stepStarted }, by: { $0.node ?? "" }).mapValues { $0.map(\.time).min() ?? 0 }
    let doneAt = Dictionary(records.filter { $0.event == .nodeDone }.map { ($0.node ?? "", $0.time) }) { a, _ in a }
    let tomorrow = Self.midnight + 26 * Self.hour
    #expect(firstSteps["web-1"].map { $0 < Self.midnight + 3 * Self.hour } == true)
    for key in ["web-2", "web-3"] {
      #expect(firstSteps[key].map { $0 >= tomorrow } == true, "\(key) started at \(firstSteps[key] ?? 0)")
    }
    for (key, t) in doneAt {
      let dayStart = ((t - Self.midnight) / 86_400).rounded(.down) * 86_400 + Self.midnight
      #expect(t <= dayStart + 3 * Self.hour && t >= dayStart + 2 * Self.hour, "\(key) finished at \(t - dayStart)s into its day: outside the window")
    }
    let d = try #require(outcome.state.deferrals.first)
    #expect(d.kind == .window && d.until == tomorrow && d.outcome == .proceeded && d.reason.contains("window closes sooner"), "\(d)")
    #expect(abs((d.waitedSeconds ?? 0) - (tomorrow - (Self.midnight + 2 * Self.hour + 56 * 60))) < 1)
    #expect(outcome.state.deferrals.count == 1, "one wait, journaled once however many slices it slept")
  }

  @Test func aWindowThatOpensBeyondMaxWaitPausesBeforeAnyNodeAndTheNextApplyRunsInIt() throws {
    var window = MaintenanceWindow(start: 120, end: 300, timezone: "UTC")
    window.maxWait = .minutes(60)
    let fleet = try Self.fleet(window: window)
    let clock = SteppedClock(Self.midnight, perNode: 60)
    let paused = try Self.run(fleet, clock: clock)
    #expect(paused.state.status == .paused && paused.created == 0 && fleet.drainer.calls.isEmpty, "no node touched: \(fleet.drainer.calls)")
    #expect(paused.summary.contains { $0.contains("it opens in 2 h 0 m, beyond max_wait 1h") }, "\(paused.summary)")
    #expect(paused.state.pauseReason?.hasPrefix("maintenance window:") == true)
    #expect(paused.state.deferrals.map(\.outcome) == [.paused])
    // The next apply, inside the window, resumes it.
    clock.advance(2.5 * Self.hour)
    let resumed = try Self.run(fleet, clock: clock)
    #expect(resumed.state.status == .completed, "\(resumed.summary)")
  }

  @Test func ctrlCDuringAWaitPausesWithTheWaitJournaledAsInterrupted() throws {
    let fleet = try Self.fleet(window: MaintenanceWindow(start: 120, end: 300, timezone: "UTC"))
    let clock = SteppedClock(Self.midnight)
    let preview = try #require(try fleet.plan().rollouts.first)
    let outcome = try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(
        prober: FakeProber(), drainer: fleet.drainer, shouldStop: { clock.now > Self.midnight + 600 }, sleep: { clock.advance($0) }, now: { clock.now })
    ).run(preview)
    #expect(outcome.interrupted && outcome.state.status == .paused && outcome.created == 0)
    #expect(outcome.state.deferrals.map(\.outcome) == [.interrupted])
  }

  // MARK: the burn rate, from a real Prometheus

  /// 99 % of a service's requests must succeed; a wave waits while both 6 s and 3 s burn faster
  /// than 2× (an error ratio above 2 %).
  static func budget(maxWait: TimeSpan) -> BurnRateGate {
    BurnRateGate(
      good: #"sum(rate(app_requests_total{node="svc"}[{{window}}])) - sum(rate(app_errors_total{node="svc"}[{{window}}]))"#,
      total: #"sum(rate(app_requests_total{node="svc"}[{{window}}]))"#, objective: 0.99,
      rules: [BurnRule(long: .seconds(6), short: .seconds(3), factor: 2)], maxWait: maxWait)
  }

  @Test(.enabled(if: PrometheusFixture.installed, "needs Debian's prometheus (run scripts/setup)"))
  func aBurningBudgetHoldsTheNextWaveUntilItFalls() throws {
    // Half the service's requests fail: 50× the budget's rate. Once the canary waits, it recovers.
    let prometheus = try PrometheusFixture.start(ratios: ["svc": 0.5])
    defer { prometheus.stop() }
    let fleet = try Self.fleet(burn: Self.budget(maxWait: .minutes(60)))
    let clock = SteppedClock(Self.midnight)
    let events = EventLog()
    let dir = prometheus.dir
    let outcome = try Self.run(fleet, clock: clock, metrics: try PrometheusClient(url: prometheus.url, timeout: 3), realSleep: 0.05) { e in
      events.add(e)
      if e.kind == .deferral, e.outcome == "waiting" { try? PrometheusFixture.write(["svc": 0.0], into: dir) }
    }
    #expect(outcome.state.status == .completed, "\(outcome.summary)")
    let d = try #require(outcome.state.deferrals.first)
    #expect(d.kind == .burnRate && d.wave == 0 && d.outcome == .proceeded && d.reason.contains("> 2.0×"), "\(d)")
    #expect(outcome.state.deferrals.count == 1)
    // The canary waited before it was touched: web-1 began after the wait ended.
    let records = try fleet.journal().records()
    let ended = try #require(records.first { $0.event == .deferralEnded })
    let web1 = try #require(records.first { $0.event == .stepStarted && $0.node == "web-1" })
    #expect(web1.seq > ended.seq)
    #expect(events.all.contains { $0.kind == .deferral && $0.outcome == "passed" && $0.message.contains("error budget allows it") })
  }

  @Test(.enabled(if: PrometheusFixture.installed, "needs Debian's prometheus (run scripts/setup)"))
  func aBudgetStillBurningAfterMaxWaitPausesTheRollout() throws {
    let prometheus = try PrometheusFixture.start(ratios: ["svc": 0.5])
    defer { prometheus.stop() }
    let fleet = try Self.fleet(burn: Self.budget(maxWait: .minutes(2)))
    let clock = SteppedClock(Self.midnight)
    let outcome = try Self.run(fleet, clock: clock, metrics: try PrometheusClient(url: prometheus.url, timeout: 3), realSleep: 0.02)
    #expect(outcome.state.status == .paused && outcome.created == 0, "\(outcome.summary)")
    #expect(outcome.state.pauseReason?.contains("still after max_wait 2m") == true, "\(outcome.state.pauseReason ?? "")")
    let d = try #require(outcome.state.deferrals.first)
    #expect(d.kind == .burnRate && d.outcome == .paused && abs((d.waitedSeconds ?? 0) - 120) < 1, "\(d)")
  }
}
