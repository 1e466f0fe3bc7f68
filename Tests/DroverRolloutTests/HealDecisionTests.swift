import DroverModel
import DroverRollout
import Foundation
import Testing

/// #20's decisions, pure: judging a node (`assessNode`), deciding a pool (`decideHeal`), as
/// tables, and whole sequences of heal passes on a simulated clock against golden logs
/// (`DROVER_UPDATE_GOLDEN=1` rewrites them).
@Suite struct HealDecisionTests {
  static let beat = HeartbeatSpec(source: .console(pattern: "BEAT"), interval: .seconds(10), missed: 3)

  // MARK: assessNode

  @Test func deadStatesAreUnhealthyAtOnceRunningOnesAreNot() {
    for (state, unhealthy) in [("running", false), ("blocked", false), ("shutoff", true), ("crashed", true), ("paused", true), ("pmsuspended", true)] {
      let (c, m) = assessNode(NodeSignals(state: state, heartbeat: .none), uuid: "u", heartbeat: nil, memory: nil, now: 100)
      #expect(c.isUnhealthy == unhealthy, "\(state)")
      #expect((m.unhealthySince != nil) == unhealthy)
      if unhealthy { #expect(c == .unhealthy(since: 100, reason: deadState(state) ?? "")) }
    }
  }

  @Test func aConsoleBeatIsATokenChangeAndSilenceCountsFromTheLastOne() {
    var memory: NodeMemory?
    var log: [String] = []
    // Beats change the token at t=0, 10, 20; then the same token until t=80.
    for (t, token) in [(0.0, "a"), (10, "b"), (20, "c"), (30, "c"), (49, "c"), (50, "c"), (80, "c"), (90, "d")] {
      let (c, m) = assessNode(NodeSignals(state: "running", heartbeat: .token(token)), uuid: "u", heartbeat: Self.beat, memory: memory, now: t)
      memory = m
      log.append("\(Int(t)) \(c.isUnhealthy ? "unhealthy" : "healthy") lastBeat=\(Int(m.lastBeat)) since=\(m.unhealthySince.map { "\(Int($0))" } ?? "-")")
    }
    #expect(log == [
      "0 healthy lastBeat=0 since=-", "10 healthy lastBeat=10 since=-", "20 healthy lastBeat=20 since=-", "30 healthy lastBeat=20 since=-",
      "49 healthy lastBeat=20 since=-", "50 unhealthy lastBeat=20 since=50", "80 unhealthy lastBeat=20 since=50", "90 healthy lastBeat=90 since=-",
    ])
  }

  @Test func aFirstSightingStartsTheGraceNowAndANewDomainStartsAfresh() {
    // No beat yet on a node first seen at t=100: unhealthy only from t=130.
    let (c1, m1) = assessNode(NodeSignals(state: "running", heartbeat: .token(nil)), uuid: "u", heartbeat: Self.beat, memory: nil, now: 100)
    #expect(c1 == .healthy && m1.lastBeat == 100)
    let (c2, _) = assessNode(NodeSignals(state: "running", heartbeat: .token(nil)), uuid: "u", heartbeat: Self.beat, memory: m1, now: 130)
    #expect(c2 == .unhealthy(since: 130, reason: "no heartbeat (console) for 30s, 3 missed at 10s"))
    // The memory of another UUID (the node was replaced) is not this domain's.
    var stale = m1
    stale.uuid = "old"
    stale.unhealthySince = 1
    let (c3, m3) = assessNode(NodeSignals(state: "running", heartbeat: .token("x")), uuid: "u", heartbeat: Self.beat, memory: stale, now: 200)
    #expect(c3 == .healthy && m3.uuid == "u" && m3.unhealthySince == nil)
  }

  /// A read that found no beat line (the log could not be read, or other output pushed the
  /// beats out of the window read) is no beat: a hung node flapping between "unreadable" and its
  /// last beat is still silent.
  @Test func anUnreadableConsoleIsNoBeat() {
    let (_, m0) = assessNode(NodeSignals(state: "running", heartbeat: .token("7 beat")), uuid: "u", heartbeat: Self.beat, memory: nil, now: 0)
    var m = m0
    for (t, token) in [(10.0, nil), (20, "7 beat"), (29, nil)] as [(Double, String?)] {
      m = assessNode(NodeSignals(state: "running", heartbeat: .token(token)), uuid: "u", heartbeat: Self.beat, memory: m, now: t).memory
    }
    #expect(m.lastBeat == 0, "no new beat line since t=0")
    let (c, _) = assessNode(NodeSignals(state: "running", heartbeat: .token("7 beat")), uuid: "u", heartbeat: Self.beat, memory: m, now: 30)
    #expect(c.isUnhealthy)
  }

  /// A timer's pass after a long gap finds a node silent: it is unhealthy from that pass, not
  /// from when its silence would have begun (never sooner than a pass could see it).
  @Test func silenceIsNeverDatedBeforeAPassSawIt() {
    let spec = HeartbeatSpec(source: .ssh(command: "true"), interval: .seconds(10), missed: 3)
    let (_, m) = assessNode(NodeSignals(state: "running", heartbeat: .answered), uuid: "u", heartbeat: spec, memory: nil, now: 0)
    let (c1, m1) = assessNode(NodeSignals(state: "running", heartbeat: .silent("timeout")), uuid: "u", heartbeat: spec, memory: m, now: 3600)
    #expect(c1 == .unhealthy(since: 3600, reason: "no heartbeat (ssh) for 3600s, 3 missed at 10s: timeout"))
    let (c2, _) = assessNode(NodeSignals(state: "running", heartbeat: .silent("timeout")), uuid: "u", heartbeat: spec, memory: m1, now: 3700)
    #expect(c2 == .unhealthy(since: 3600, reason: "no heartbeat (ssh) for 3700s, 3 missed at 10s: timeout"))
  }

  @Test func agentAndSSHBeatsAreAnswersAndTheirSilenceSaysWhy() {
    let spec = HeartbeatSpec(source: .agent, interval: .seconds(5), missed: 2)
    let (_, m) = assessNode(NodeSignals(state: "running", heartbeat: .answered), uuid: "u", heartbeat: spec, memory: nil, now: 0)
    let (c1, m1) = assessNode(NodeSignals(state: "running", heartbeat: .silent("agent not connected")), uuid: "u", heartbeat: spec, memory: m, now: 9)
    #expect(c1 == .healthy)
    let (c2, _) = assessNode(NodeSignals(state: "running", heartbeat: .silent("agent not connected")), uuid: "u", heartbeat: spec, memory: m1, now: 10)
    #expect(c2 == .unhealthy(since: 10, reason: "no heartbeat (agent) for 10s, 2 missed at 5s: agent not connected"))
  }

  @Test func anotherHeartbeatSourceStartsAfresh() {
    let (_, m) = assessNode(NodeSignals(state: "running", heartbeat: .token("1 beat")), uuid: "u", heartbeat: Self.beat, memory: nil, now: 0)
    let agent = HeartbeatSpec(source: .agent, interval: .seconds(1), missed: 1)
    let (c, m2) = assessNode(NodeSignals(state: "running", heartbeat: .silent("no agent")), uuid: "u", heartbeat: agent, memory: m, now: 100)
    #expect(c == .healthy && m2.lastBeat == 100 && m2.source == "agent", "the agent's grace starts at its first pass")
  }

  @Test func unhealthySinceKeepsTheEarliestMoment() {
    let (_, m1) = assessNode(NodeSignals(state: "shutoff", heartbeat: .none), uuid: "u", heartbeat: nil, memory: nil, now: 10)
    let (c2, _) = assessNode(NodeSignals(state: "shutoff", heartbeat: .none), uuid: "u", heartbeat: nil, memory: m1, now: 70)
    #expect(c2 == .unhealthy(since: 10, reason: "shut off (its QEMU process is gone)"))
  }

  // MARK: decideHeal

  static func nodes(_ states: [NodeCondition]) -> [HealNode] {
    states.enumerated().map { HealNode(key: "web-\($0 + 1)", name: "web-\($0 + 1)", uuid: "u\($0 + 1)", host: "h", condition: $1) }
  }
  static let dead = NodeCondition.unhealthy(since: 0, reason: "shut off")
  static let fresh = NodeCondition.unhealthy(since: 95, reason: "shut off")

  struct Row: CustomTestStringConvertible, Sendable {
    var name: String
    var input: HealPoolInput
    var verdict: String
    var replace: [String]
    var left: [String]
    var testDescription: String { name }
  }

  static let rows: [Row] = {
    let r = RemediationSpec(unhealthyAfter: .seconds(30), maxUnhealthy: .count(1), maxInFlight: 1, cooldown: .seconds(60)).only([.replace])
    func input(_ conditions: [NodeCondition], remediation: RemediationSpec = r, protected: Bool = false, active: ActiveRollout? = nil, lastHeal: Double? = nil)
      -> HealPoolInput
    {
      HealPoolInput(pool: "web", remediation: remediation, replicas: conditions.count, protected: protected, activeRollout: active, lastHealEnded: lastHeal, nodes: nodes(conditions))
    }
    var wide = r
    wide.maxUnhealthy = .percent(100)
    wide.maxInFlight = 2
    var mayTouch = r
    mayTouch.remediateProtected = true
    return [
      Row(name: "all healthy", input: input([.healthy, .healthy, .healthy]), verdict: "healthy", replace: [], left: []),
      Row(name: "one dead past unhealthy_after", input: input([.healthy, dead, .healthy]), verdict: "remediate", replace: ["web-2"], left: []),
      Row(name: "one dead, not for long enough", input: input([.healthy, fresh, .healthy]), verdict: "waiting", replace: [], left: ["web-2"]),
      Row(name: "two of three dead, max_unhealthy 1", input: input([dead, dead, .healthy]), verdict: "short-circuit", replace: [], left: ["web-1", "web-2"]),
      Row(name: "the short-circuit counts fresh ones too", input: input([dead, fresh, .healthy]), verdict: "short-circuit", replace: [], left: ["web-1", "web-2"]),
      Row(name: "max_unhealthy 100%, max_in_flight 2 of 3 dead", input: input([dead, dead, dead], remediation: wide), verdict: "remediate", replace: ["web-1", "web-2"], left: ["web-3"]),
      Row(name: "protected", input: input([dead, .healthy, .healthy], protected: true), verdict: "protected", replace: [], left: ["web-1"]),
      Row(name: "protected, remediate_protected", input: input([dead, .healthy, .healthy], remediation: mayTouch, protected: true), verdict: "remediate", replace: ["web-1"], left: []),
      Row(name: "an upgrade in progress", input: input([dead, .healthy], active: ActiveRollout(id: "web-1", kind: .upgrade)), verdict: "rollout-in-progress", replace: [], left: ["web-1"]),
      Row(name: "an interrupted heal", input: input([dead, .healthy], active: ActiveRollout(id: "heal-web-1", kind: .heal, nodes: ["web-1"])), verdict: "resume", replace: ["web-1"], left: []),
      Row(
        name: "an interrupted heal in a wider outage", input: input([dead, dead, .healthy], active: ActiveRollout(id: "heal-web-1", kind: .heal, nodes: ["web-1"])),
        verdict: "short-circuit", replace: [], left: ["web-1", "web-2"]),
      Row(
        name: "an interrupted heal of a pool protected since", input: input([dead, .healthy], protected: true, active: ActiveRollout(id: "heal-web-1", kind: .heal, nodes: ["web-1"])),
        verdict: "protected", replace: [], left: ["web-1"]),
      Row(name: "cooldown", input: input([dead, .healthy, .healthy], lastHeal: 50), verdict: "cooldown", replace: [], left: ["web-1"]),
      Row(name: "cooldown over", input: input([dead, .healthy, .healthy], lastHeal: 30), verdict: "remediate", replace: ["web-1"], left: []),
      Row(name: "unknown is never replaced", input: input([.unknown(reason: "host down"), .healthy]), verdict: "healthy", replace: [], left: []),
      Row(
        name: "a percentage counts the nodes that exist, not a scale-up not applied",
        input: HealPoolInput(pool: "web", remediation: RemediationSpec(unhealthyAfter: .seconds(0), maxUnhealthy: .percent(50)).only([.replace]), replicas: 10, protected: false, nodes: nodes([dead, dead])),
        verdict: "short-circuit", replace: [], left: ["web-1", "web-2"]),
    ]
  }()

  @Test(arguments: rows) func poolDecisions(_ row: Row) {
    let d = decideHeal(row.input, now: 100)
    #expect(d.verdict.name == row.verdict, "\(d.why)")
    #expect(d.replace == row.replace)
    #expect(d.left == row.left)
    let unknown = row.input.nodes.contains { if case .unknown = $0.condition { true } else { false } }
    #expect(healExitStatus([d]) == (row.left.isEmpty && !unknown ? 0 : 2), "unhealthy or unknown nodes left: exit 2")
  }

  @Test func oldestUnhealthyGoesFirst() {
    var r = RemediationSpec(unhealthyAfter: .seconds(0), maxUnhealthy: .percent(100), maxInFlight: 1).only([.replace])
    r.cooldown = .seconds(0)
    let input = HealPoolInput(
      pool: "web", remediation: r, replicas: 3, protected: false,
      nodes: Self.nodes([.unhealthy(since: 50, reason: "a"), .unhealthy(since: 10, reason: "b"), .unhealthy(since: 30, reason: "c")]))
    #expect(decideHeal(input, now: 100).replace == ["web-2"])
  }

  // MARK: golden sequences on a simulated clock

  /// A pool of 3 nodes as scripted over time: which are dead (libvirt) and which beat, with a
  /// heal pass every `every` seconds; a replaced node is new (a new UUID, beating again).
  struct Sequence: CustomTestStringConvertible, Sendable {
    var name: String
    var remediation: RemediationSpec
    var every: Double
    var until: Double
    /// Node index → the time it dies (libvirt shut off).
    var dies: [Int: Double] = [:]
    /// Node index → the time its beat stops.
    var silentFrom: [Int: Double] = [:]
    var testDescription: String { name }
  }

  static let sequences: [Sequence] = [
    Sequence(
      name: "heal: a node destroyed at 15s, unhealthy_after 30s, a pass every 10s", remediation: RemediationSpec(unhealthyAfter: .seconds(30), maxUnhealthy: .count(1)).only([.replace]),
      every: 10, until: 80, dies: [2: 15]),
    Sequence(
      name: "heal: a heartbeat stops at 20s, interval 10s x 3, unhealthy_after 20s", remediation: RemediationSpec(unhealthyAfter: .seconds(20), maxUnhealthy: .count(1)).only([.replace]),
      every: 10, until: 100, silentFrom: [3: 20]),
    Sequence(
      name: "heal: 3 of 3 die at once, max_unhealthy 1", remediation: RemediationSpec(unhealthyAfter: .seconds(10), maxUnhealthy: .count(1)).only([.replace]), every: 10, until: 60,
      dies: [1: 5, 2: 5, 3: 5]),
    Sequence(
      name: "heal: 2 die, max_in_flight 1, cooldown 30s",
      remediation: RemediationSpec(unhealthyAfter: .seconds(10), maxUnhealthy: .percent(100), maxInFlight: 1, cooldown: .seconds(30)).only([.replace]), every: 10, until: 100,
      dies: [1: 5, 3: 5]),
  ]

  static func simulate(_ s: Sequence) -> [String] {
    var generation = [1: 1, 2: 1, 3: 1]
    var bornAt = [1: 0.0, 2: 0.0, 3: 0.0]
    var memory: [String: NodeMemory] = [:]
    var lastHeal: Double?
    var log: [String] = []
    var t = 0.0
    while t <= s.until {
      var nodes: [HealNode] = []
      for i in 1...3 {
        let key = "web-\(i)", uuid = "u\(i)-g\(generation[i] ?? 1)"
        let replaced = (generation[i] ?? 1) > 1
        let dead = !replaced && (s.dies[i].map { t >= $0 } ?? false)
        let silentSince = replaced ? nil : s.silentFrom[i]
        // The guest beats every 10 s from its birth while not silent: the token is its last beat.
        let lastBeat = Swift.min(t, silentSince ?? t)
        let beats = Int((lastBeat - (bornAt[i] ?? 0)) / 10)
        let signals = NodeSignals(state: dead ? "shutoff" : "running", heartbeat: .token("beat \(beats)"))
        let (c, m) = assessNode(signals, uuid: uuid, heartbeat: beat, memory: memory[key], now: t)
        memory[key] = m
        nodes.append(HealNode(key: key, name: key, uuid: uuid, host: "h", condition: c))
      }
      let d = decideHeal(HealPoolInput(pool: "web", remediation: s.remediation, replicas: 3, protected: false, lastHealEnded: lastHeal, nodes: nodes), now: t)
      let conditions = nodes.map { n -> String in
        if case .unhealthy(let since, _) = n.condition { return "\(n.key):unhealthy(\(Int(t - since))s)" }
        return "\(n.key):ok"
      }
      log.append("t=\(Int(t)) \(conditions.joined(separator: " ")) → \(d.verdict.name)\(d.replace.isEmpty ? "" : " " + d.replace.joined(separator: ","))")
      for key in d.replace {
        // The heal takes 5 s and ends healthy: a new generation, born now.
        guard let i = Int(key.split(separator: "-").last ?? "") else { continue }
        generation[i, default: 1] += 1
        bornAt[i] = t
        lastHeal = t + 5
      }
      t += s.every
    }
    return log
  }

  @Test(arguments: sequences) func healPassesMatchGoldenLog(_ s: Sequence) throws {
    let text = Self.simulate(s).joined(separator: "\n") + "\n"
    let file = RolloutSequenceTests.golden.appendingPathComponent(s.name + ".golden")
    if ProcessInfo.processInfo.environment["DROVER_UPDATE_GOLDEN"] == "1" {
      try text.write(to: file, atomically: true, encoding: .utf8)
    }
    #expect(text == (try String(contentsOf: file, encoding: .utf8)))
  }

  /// The invariants the golden logs show, checked directly: a death is replaced within one pass
  /// of `unhealthy_after`; a wider outage replaces nothing; the rate limit holds.
  @Test func sequenceInvariants() {
    let destroyed = Self.simulate(Self.sequences[0])
    #expect(destroyed.first { $0.contains("remediate") }?.hasPrefix("t=50") == true, "death at 15 + 30 s → the first pass at or after 45 s")
    let silent = Self.simulate(Self.sequences[1])
    #expect(silent.first { $0.contains("remediate") }?.hasPrefix("t=70") == true, "last beat 20 + 30 s silence + 20 s")
    #expect(Self.simulate(Self.sequences[2]).allSatisfy { !$0.contains("remediate") })
    let limited = Self.simulate(Self.sequences[3]).filter { $0.contains("remediate") }
    #expect(limited.count == 2 && limited[0].hasSuffix("web-1") && limited[1].hasSuffix("web-3"))
  }
}

extension RemediationSpec {
  /// The spec with only these ladder rungs: the guards' tables predate the ladder and test
  /// replacement alone (a pool may leave the repair rungs out).
  func only(_ rungs: [RepairRung]) -> RemediationSpec {
    var r = self
    r.actions = rungs
    return r
  }
}
