import DroverModel
import DroverRollout
import Foundation
import Testing

/// #44: what the schedule gates decide before a batch, as tables on a clock passed in — a burn
/// rate that waits then pauses at `max_wait`, a window that waits only when it opens within
/// `max_wait`, a heal that never waits — and heal's `replace` rung held while its gentle repairs run.
@Suite struct ScheduleGateTests {
  static let hour = 3600.0
  /// Every day 02:00–05:00 UTC; a day's wait at most.
  static let window = MaintenanceWindow(start: 120, end: 300, timezone: "UTC")
  /// 2026-12-07 00:00 UTC.
  static let midnight = 1_796_601_600.0
  static let budget = BurnRateGate(good: "g{{window}}", total: "t{{window}}", objective: 0.999, rules: [BurnRule(long: .minutes(60), short: .minutes(5), factor: 14.4)], maxWait: .minutes(30))

  static func policy(window: MaintenanceWindow? = nil, burn: BurnRateGate? = nil) -> RolloutPolicy {
    var p = RolloutPolicy(canary: 1, waves: [2], maxSurge: 1, maxUnavailable: 0, budget: 0)
    p.window = window
    p.burnRate = burn
    return p
  }

  struct Row: CustomTestStringConvertible, Sendable {
    var name: String
    var policy: RolloutPolicy
    var kind: RolloutKind = .upgrade
    var burn: BurnDecision?
    var now: Double
    var seconds: Double = 600
    var since: [Deferral.Kind: Double] = [:]
    var expected: ScheduleStep
    var testDescription: String { name }
  }

  static let burning = BurnDecision.wait("burn rate 16.2× over 1h and 15.0× over 5m > 14.4×")
  static let rows: [Row] = {
    var short = window
    short.maxWait = .minutes(60)
    var never = window
    never.end = 130  // ten minutes: a 20-minute node never fits
    return [
      Row(name: "no gates", policy: policy(), now: midnight, expected: .go),
      Row(name: "inside the window, the node fits", policy: policy(window: window), now: midnight + 3 * hour, expected: .go),
      Row(
        name: "before the window: wait until it opens", policy: policy(window: window), now: midnight,
        expected: .wait(seconds: 2 * hour, kind: .window, reason: "outside the window (every day 02:00–05:00 UTC)", until: midnight + 2 * hour)),
      Row(
        name: "a node that would end after 05:00 waits for tomorrow", policy: policy(window: window), now: midnight + 4.95 * hour,
        expected: .wait(
          seconds: 21.05 * hour, kind: .window, reason: "a node takes ~600s and the window closes sooner", until: midnight + 26 * hour)),
      Row(
        name: "opens beyond max_wait: pause at once", policy: policy(window: short), now: midnight,
        expected: .pause(kind: .window, reason: "maintenance window: outside the window (every day 02:00–05:00 UTC); it opens in 2 h 0 m, beyond max_wait 1h")),
      Row(
        name: "max_wait counts from the wait's start", policy: policy(window: short), now: midnight + 1.5 * hour, since: [.window: midnight],
        expected: .pause(kind: .window, reason: "maintenance window: outside the window (every day 02:00–05:00 UTC); it opens in 30 m 0 s, beyond max_wait 1h")),
      Row(
        name: "a heal never waits for the window", policy: policy(window: window), kind: .heal, now: midnight,
        expected: .pause(kind: .window, reason: "maintenance window: outside the window (every day 02:00–05:00 UTC); it opens in 2 h 0 m")),
      Row(
        name: "a node longer than the window never fits", policy: policy(window: never), now: midnight, seconds: 1200,
        expected: .pause(kind: .window, reason: "maintenance window: no opening of every day 02:00–02:10 UTC fits a node of ~1200s within 400 days")),
      Row(
        name: "burning: wait and measure again", policy: policy(burn: budget), burn: burning, now: midnight,
        expected: .wait(seconds: 30, kind: .burnRate, reason: "burn rate 16.2× over 1h and 15.0× over 5m > 14.4×", until: nil)),
      Row(
        name: "still burning after max_wait: pause", policy: policy(burn: budget), burn: burning, now: midnight + 1800, since: [.burnRate: midnight],
        expected: .pause(kind: .burnRate, reason: "error budget: burn rate 16.2× over 1h and 15.0× over 5m > 14.4×, still after max_wait 30m")),
      Row(
        name: "the last poll stops at max_wait", policy: policy(burn: budget), burn: burning, now: midnight + 1790, since: [.burnRate: midnight],
        expected: .wait(seconds: 10, kind: .burnRate, reason: "burn rate 16.2× over 1h and 15.0× over 5m > 14.4×", until: nil)),
      Row(
        name: "the budget first, then the window", policy: policy(window: window, burn: budget), burn: burning, now: midnight + 3 * hour,
        expected: .wait(seconds: 30, kind: .burnRate, reason: "burn rate 16.2× over 1h and 15.0× over 5m > 14.4×", until: nil)),
      Row(
        name: "a budget that allows it, then the window", policy: policy(window: window, burn: budget), burn: .proceed("fine"), now: midnight,
        expected: .wait(seconds: 2 * hour, kind: .window, reason: "outside the window (every day 02:00–05:00 UTC)", until: midnight + 2 * hour)),
      Row(
        name: "a heal with a burning budget pauses", policy: policy(burn: budget), kind: .heal, burn: burning, now: midnight,
        expected: .pause(kind: .burnRate, reason: "error budget: burn rate 16.2× over 1h and 15.0× over 5m > 14.4×")),
    ]
  }()

  @Test(arguments: rows) func theGatesDecide(_ row: Row) {
    #expect(
      ScheduleGate.decide(policy: row.policy, kind: row.kind, burn: row.burn, now: row.now, predictedSeconds: row.seconds, waitingSince: row.since)
        == row.expected)
  }

  @Test func aDeferralSaysWhenTheWindowOpensAndRoundTripsTheJournal() throws {
    var d = Deferral(kind: .window, reason: "outside the window", wave: 1, began: Self.midnight, until: Self.midnight + 3 * Self.hour + 720)
    #expect(d.waitingText(now: Self.midnight) == "waiting for the window (opens in 3 h 12 m): outside the window")
    d.outcome = .proceeded
    d.waitedSeconds = 11_520
    #expect(Deferral(journalText: d.journalText) == d)
    #expect(Deferral(journalText: #"{"kind":"window","reason":"x","wave":0,"began":1e999}"#) == nil, "a time that is not a number is no record")
    let b = Deferral(kind: .burnRate, reason: "burn rate 16.2× > 14.4× (1h / 5m)", wave: 2, began: Self.midnight)
    #expect(b.waitingText(now: Self.midnight + 95) == "waiting: burn rate 16.2× > 14.4× (1h / 5m) (for 1 m 35 s)")
  }

  @Test func theStateFoldsEachWaitAndEachNodesDuration() {
    var s = RolloutState(id: "r", pool: "web", fromImage: "a", toImage: "b", schedule: [["web-1"]], policy: Self.policy())
    let d = Deferral(kind: .window, reason: "closed", wave: 0, began: 10, until: 100)
    s.apply(JournalRecord(seq: 1, time: 10, rollout: "r", event: .deferred, step: "0", detail: d.journalText))
    #expect(s.waiting == d)
    var ended = d
    ended.outcome = .proceeded
    ended.waitedSeconds = 90
    s.apply(JournalRecord(seq: 2, time: 100, rollout: "r", event: .deferralEnded, step: "0", detail: ended.journalText))
    #expect(s.waiting == nil && s.deferrals == [ended])
    s.apply(JournalRecord(seq: 3, time: 100, rollout: "r", event: .stepStarted, node: "web-1", step: "cordon"))
    s.apply(JournalRecord(seq: 4, time: 150, rollout: "r", event: .stepStarted, node: "web-1", step: "create"))
    s.apply(JournalRecord(seq: 5, time: 400, rollout: "r", event: .nodeDone, node: "web-1"))
    #expect(s.nodeSeconds == ["web-1": 300])
  }

  // MARK: heal's replace rung

  static let r = RemediationSpec(unhealthyAfter: .seconds(30), maxUnhealthy: .count(2), maxInFlight: 2, cooldown: .seconds(0)).only([.start, .replace])

  @Test func outsideTheWindowADeadNodeIsStartedButNotReplaced() {
    // web-1 is shut off (start is due); web-2's start was tried long ago and it is still dead
    // (replace is due). With the window closed: web-1 is started, web-2 waits.
    let tried = RepairIncident(began: 0, attempts: [RepairAttempt(rung: .start, at: 10, graceEnds: 20)])
    let nodes = [
      HealNode(key: "web-1", name: "web-1", uuid: "u1", host: "h", condition: .unhealthy(since: 0, reason: "shut off"), state: "shutoff"),
      HealNode(key: "web-2", name: "web-2", uuid: "u2", host: "h", condition: .unhealthy(since: 0, reason: "shut off"), state: "shutoff", incident: tried),
      HealNode(key: "web-3", name: "web-3", uuid: "u3", host: "h", condition: .healthy),
    ]
    var input = HealPoolInput(pool: "web", remediation: Self.r, replicas: 3, protected: false, nodes: nodes)
    let open = decideHeal(input, now: 1000)
    #expect(open.replace == ["web-2"] && open.repairs.map(\.key) == ["web-1"])
    input.replaceHold = "outside the window (every day 02:00–05:00 UTC); the window opens in 2 h 0 m"
    let held = decideHeal(input, now: 1000)
    #expect(held.verdict == .remediate && held.repairs.map(\.key) == ["web-1"] && held.repairs.first?.rung == .start)
    #expect(held.replace.isEmpty && held.left == ["web-2"])
    #expect(held.why.contains("replace of web-2 deferred: outside the window"), "\(held.why)")
    // The rung stays due: nothing recorded as tried for web-2.
    #expect(advanceIncidents(input, decision: held, now: 1000)["web-2"]?.attempts.map(\.rung) == [.start])
    // Only web-2 dead: the pass waits and says why.
    input.nodes = [nodes[1], nodes[2]]
    let waiting = decideHeal(input, now: 1000)
    #expect(waiting.verdict == .waiting && waiting.why.contains("deferred"), "\(waiting.why)")
    // An interrupted heal is not resumed while it may not replace.
    input.activeRollout = ActiveRollout(id: "heal-web-1", kind: .heal, nodes: ["web-2"])
    #expect(decideHeal(input, now: 1000).verdict == .waiting)
  }
}
