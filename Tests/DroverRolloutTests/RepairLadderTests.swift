import DroverModel
import DroverRollout
import Foundation
import Testing

/// #36: heal's remediation ladder, gentlest first — resume, start, reset, and only then replace
/// (the one rung that discards a disk) — and the pool guards that hold disruptive rungs back.
struct RepairLadderTests {
  static let r: RemediationSpec = {
    var r = RemediationSpec(unhealthyAfter: .seconds(60), maxUnhealthy: .percent(100), maxInFlight: 1)
    r.repairGrace = .seconds(120)
    return r
  }()
  static let down = NodeCondition.unhealthy(since: 100, reason: "x")

  struct Row: CustomTestStringConvertible, Sendable {
    var name: String
    var state: String
    var condition: NodeCondition
    var incident: RepairIncident?
    var remediation: RemediationSpec = RepairLadderTests.r
    var now: Double
    var step: LadderStep
    var testDescription: String { name }
  }

  static func tried(_ rungs: RepairRung..., at: Double = 100) -> RepairIncident {
    RepairIncident(began: 100, attempts: rungs.map { RepairAttempt(rung: $0, at: at, graceEnds: at + 120) })
  }

  static let rows: [Row] = {
    var later = r
    later.repairAfter = .seconds(30)
    var noReplace = r
    noReplace.actions = [.resume, .start]
    var replaceOnly = r
    replaceOnly.actions = [.replace]
    return [
      Row(name: "paused → resume at once", state: "paused", condition: down, now: 100, step: .act(.resume)),
      Row(name: "shut off → start on its own disk", state: "shutoff", condition: down, now: 100, step: .act(.start)),
      Row(name: "crashed → start", state: "crashed", condition: down, now: 100, step: .act(.start)),
      Row(name: "running, no beat → reset", state: "running", condition: down, now: 100, step: .act(.reset)),
      Row(name: "repair_after not reached", state: "paused", condition: down, remediation: later, now: 110, step: .waiting("resume is due in 20s (repair_after 30s)")),
      Row(
        name: "in a repair's grace", state: "paused", condition: down, incident: tried(.resume), now: 150,
        step: .waiting("resume ran 50s ago; waiting up to 70s more for a fresh sign of life")),
      Row(name: "resume did not bring it back → reset", state: "paused", condition: down, incident: tried(.resume), now: 220, step: .act(.reset)),
      Row(
        name: "start did not bring it back → replace only unhealthy_after after the grace", state: "shutoff", condition: down, incident: tried(.start), now: 250,
        step: .waiting("replace is due in 30s (unhealthy_after 1m after the last repair's grace)")),
      Row(name: "… then replace", state: "shutoff", condition: down, incident: tried(.start), now: 280, step: .act(.replace)),
      Row(name: "reset tried → replace after its grace and unhealthy_after", state: "running", condition: down, incident: tried(.reset), now: 280, step: .act(.replace)),
      Row(
        name: "a flapping node climbs: resume tried, paused again → reset", state: "paused", condition: down,
        incident: RepairIncident(began: 100, attempts: [RepairAttempt(rung: .resume, at: 100, graceEnds: 110)]), now: 300, step: .act(.reset)),
      Row(
        name: "no replace allowed: reported, never rebuilt", state: "running", condition: down, remediation: noReplace, now: 100,
        step: .exhausted("no remediation action left (actions: resume, start): reported, never rebuilt")),
      Row(name: "replace only: after unhealthy_after", state: "shutoff", condition: down, remediation: replaceOnly, now: 159, step: .waiting("replace is due in 1s (unhealthy_after 1m)")),
      Row(name: "a healthy node", state: "running", condition: .healthy, now: 100, step: .healthy),
      Row(name: "a node whose host was not read", state: "running", condition: .unknown(reason: "host down"), now: 100, step: .waiting("host down")),
    ]
  }()

  @Test(arguments: rows) func ladder(_ row: Row) {
    let (step, incident) = climbLadder(state: row.state, condition: row.condition, incident: row.incident, remediation: row.remediation, now: row.now)
    #expect(step == row.step)
    if row.condition.isUnhealthy { #expect(incident != nil, "an unhealthy node has an incident") }
  }

  @Test func anIncidentEndsAfterUnhealthyAfterOfHealth() {
    let open = Self.tried(.resume)
    let (s1, i1) = climbLadder(state: "running", condition: .healthy, incident: open, remediation: Self.r, now: 200)
    #expect(s1 == .healthy && i1?.healthySince == 200 && i1?.tried == [.resume], "healthy again, the incident stays open")
    let (_, i2) = climbLadder(state: "running", condition: .healthy, incident: i1, remediation: Self.r, now: 259)
    #expect(i2?.healthySince == 200)
    let (_, i3) = climbLadder(state: "running", condition: .healthy, incident: i2, remediation: Self.r, now: 260)
    #expect(i3 == nil, "healthy for unhealthy_after: the incident ends")
    // Unhealthy again before that: the same incident, resume already tried.
    let (s4, i4) = climbLadder(state: "paused", condition: .unhealthy(since: 240, reason: "x"), incident: i2, remediation: Self.r, now: 240)
    #expect(s4 == .act(.reset) && i4?.healthySince == nil)
  }

  // MARK: the pool's guards over the ladder

  static func node(_ i: Int, _ state: String, _ condition: NodeCondition, host: String = "h1", incident: RepairIncident? = nil) -> HealNode {
    HealNode(key: "web-\(i)", name: "web-\(i)", uuid: "u\(i)", host: host, condition: condition, state: state, incident: incident)
  }

  @Test func gentleRungsRunWhateverTheGuardsDisruptiveOnesDoNot() {
    var r = Self.r
    r.maxUnhealthy = .count(1)
    // Three paused nodes, more than max_unhealthy: each is resumed, nothing is reset.
    let paused = decideHeal(
      HealPoolInput(pool: "web", remediation: r, replicas: 3, protected: false, nodes: (1...3).map { Self.node($0, "paused", Self.down) }), now: 100)
    #expect(paused.verdict == .remediate && paused.repairs.map(\.rung) == [.resume, .resume, .resume] && paused.replace.isEmpty, "\(paused.why)")
    #expect(healExitStatus([paused]) == 0)
    // Three running silent nodes: a wider outage, no reset.
    let silent = decideHeal(
      HealPoolInput(pool: "web", remediation: r, replicas: 3, protected: false, nodes: (1...3).map { Self.node($0, "running", Self.down) }), now: 100)
    #expect(silent.verdict.name == "short-circuit" && silent.repairs.isEmpty && silent.left.count == 3)
    // Protected: a shut-off node is started, a silent one is only reported.
    let guarded = decideHeal(
      HealPoolInput(pool: "web", remediation: Self.r, replicas: 3, protected: true, nodes: [Self.node(1, "shutoff", Self.down), Self.node(2, "running", Self.down), Self.node(3, "running", .healthy)]),
      now: 100)
    #expect(guarded.repairs.map(\.key) == ["web-1"] && guarded.repairs.first?.rung == .start && guarded.left == ["web-2"], "\(guarded.why)")
  }

  @Test func hostsInOutageHoldResetAndReplaceBackThereOnly() {
    let nodes = [
      Self.node(1, "running", Self.down, host: "h1"), Self.node(2, "running", Self.down, host: "h1"), Self.node(3, "shutoff", Self.down, host: "h1"),
      Self.node(4, "running", .healthy, host: "h2"), Self.node(5, "running", Self.down, host: "h2"), Self.node(6, "running", .healthy, host: "h2"),
    ]
    let outage = hostsInOutage(nodes) { _ in 0.5 }
    #expect(outage == ["h1"])
    var r = Self.r
    r.maxInFlight = 3
    let d = decideHeal(HealPoolInput(pool: "web", remediation: r, replicas: 6, protected: false, nodes: nodes, outageHosts: outage), now: 100)
    #expect(d.repairs.map { "\($0.key):\($0.rung.rawValue)" } == ["web-3:start", "web-5:reset"], "\(d.why)")
    #expect(d.left == ["web-1", "web-2"] && d.why.contains("host h1 in outage"), "\(d.why)")
    // One unhealthy node of one is no outage: one node tells nothing about its host.
    #expect(hostsInOutage([Self.node(1, "running", Self.down)]) { _ in 0.5 }.isEmpty)
    // A host's own threshold.
    #expect(hostsInOutage(nodes) { $0 == "h1" ? 1.0 : 0.5 }.isEmpty)
  }

  @Test func maxInFlightAndCooldownLimitDisruptiveRungsOnly() {
    var r = Self.r
    r.cooldown = .seconds(300)
    let nodes = [Self.node(1, "running", Self.down), Self.node(2, "running", .unhealthy(since: 90, reason: "y")), Self.node(3, "paused", Self.down)]
    let d = decideHeal(HealPoolInput(pool: "web", remediation: r, replicas: 3, protected: false, nodes: nodes), now: 100)
    #expect(d.repairs.map { "\($0.key):\($0.rung.rawValue)" } == ["web-3:resume", "web-2:reset"], "oldest first, one disruptive: \(d.why)")
    let cooling = decideHeal(HealPoolInput(pool: "web", remediation: r, replicas: 3, protected: false, lastHealEnded: 50, nodes: nodes), now: 100)
    #expect(cooling.repairs.map(\.rung) == [.resume] && cooling.left == ["web-2", "web-1"], "\(cooling.why)")
  }

  @Test func aHealWhoseNodesAreAllHealthyIsNotResumed() {
    let active = ActiveRollout(id: "heal-web-1", kind: .heal, nodes: ["web-1"])
    let d = decideHeal(
      HealPoolInput(pool: "web", remediation: Self.r, replicas: 2, protected: false, activeRollout: active, nodes: [Self.node(1, "running", .healthy), Self.node(2, "running", .healthy)]),
      now: 100)
    #expect(d.verdict == .staleHeal(id: "heal-web-1") && d.replace.isEmpty && d.why.contains("rollout abort"), "\(d.why)")
  }

  @Test func theAttemptIsRecordedBeforeItRuns() {
    let input = HealPoolInput(pool: "web", remediation: Self.r, replicas: 1, protected: false, nodes: [Self.node(1, "paused", Self.down)])
    let d = decideHeal(input, now: 100)
    let incidents = advanceIncidents(input, decision: d, now: 100)
    #expect(incidents["web-1"]?.attempts == [RepairAttempt(rung: .resume, at: 100, graceEnds: 220)])
  }

  // MARK: a seeded model of heal under random faults

  /// One simulated node: what libvirt says, whether its guest beats, which domain it is.
  struct SimNode {
    var host: String
    var state = "running"
    var beating = true
    var generation = 1
    /// Its guest is wedged: a resume or start brings the domain back, not the beat.
    var wedged = false
  }

  @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
  func healUnderRandomFaultsNeverMakesTheFleetWorse(seed: Int) {
    var rng = SplitMix(seed: UInt64(seed))
    var r = RemediationSpec(unhealthyAfter: .seconds(30), maxUnhealthy: .percent(60), maxInFlight: 1)
    r.repairGrace = .seconds(20)
    let beat = HeartbeatSpec(source: .agent, interval: .seconds(5), missed: 2)
    var sim = (1...6).map { SimNode(host: $0 <= 3 ? "h1" : "h2") }
    var memory: [String: NodeMemory] = [:]
    var now = 0.0
    var unreadable: String?
    var acted: [RepairRung: Int] = [:]
    for pass in 0..<120 {
      // Faults.
      let i = Int(rng.next() % 6)
      switch rng.next() % 10 {
      case 0: if sim[i].state == "running" { sim[i].state = "paused" }
      case 1: sim[i].state = "shutoff"
      case 2: sim[i].beating = false; sim[i].wedged = rng.next() % 2 == 0
      case 3: unreadable = unreadable == nil ? (rng.next() % 2 == 0 ? "h1" : "h2") : nil
      case 4: for j in sim.indices where sim[j].host == "h2" { sim[j].state = "shutoff" }
      default: break
      }
      now += Double(1 + rng.next() % 15)
      var nodes: [HealNode] = []
      for (j, n) in sim.enumerated() {
        let key = "web-\(j + 1)", uuid = "u\(j + 1)-g\(n.generation)"
        if n.host == unreadable {
          nodes.append(HealNode(key: key, name: key, uuid: uuid, host: n.host, condition: .unknown(reason: "unreadable"), state: n.state, incident: memory[key]?.incident))
          continue
        }
        let signal: HeartbeatSignal = n.state == "running" && n.beating ? .answered : .silent("no answer")
        let (condition, m) = assessNode(NodeSignals(state: n.state, heartbeat: signal), uuid: uuid, heartbeat: beat, memory: memory[key], now: now)
        memory[key] = m
        nodes.append(HealNode(key: key, name: key, uuid: uuid, host: n.host, condition: condition, state: n.state, incident: m.incident))
      }
      let outage = hostsInOutage(nodes) { _ in 0.5 }
      let input = HealPoolInput(pool: "web", remediation: r, replicas: 6, protected: false, nodes: nodes, outageHosts: outage)
      let d = decideHeal(input, now: now)
      let incidents = advanceIncidents(input, decision: d, now: now)
      for n in nodes { memory[n.key]?.incident = incidents[n.key] }
      let context = "seed \(seed), pass \(pass): \(d.why)"
      for repair in d.repairs { acted[repair.rung, default: 0] += 1 }
      acted[.replace, default: 0] += d.replace.count
      // At most max_in_flight disruptive rungs a pass, none on a host in outage.
      let disruptive = d.repairs.filter { $0.rung.isDisruptive }.map(\.key) + d.replace
      #expect(disruptive.count <= r.maxInFlight, "\(context)")
      let hostOf = Dictionary(nodes.map { ($0.key, $0.host) }) { a, _ in a }
      #expect(!disruptive.contains { outage.contains(hostOf[$0] ?? "") }, "\(context)")
      for key in d.replace {
        // A disk is discarded only once every gentler rung that applies was tried in this incident.
        guard let n = nodes.first(where: { $0.key == key }) else { continue }
        let gentler = applicableRungs(n.state).filter { $0 != .replace && r.actions.contains($0) }
        #expect(Set(gentler).isSubset(of: n.incident?.tried ?? []), "\(key) replaced before \(gentler) was tried: \(context)")
      }
      for incident in incidents.values {
        // Each rung at most once per incident.
        #expect(Set(incident.attempts.map(\.rung)).count == incident.attempts.count, "\(context)")
      }
      // Act — or crash (kill -9) after the attempt was journaled and before it ran, 1 in 8.
      for repair in d.repairs where rng.next() % 8 != 0 {
        guard let j = Int(repair.key.dropFirst(4)).map({ $0 - 1 }) else { continue }
        switch repair.rung {
        case .resume: if sim[j].state == "paused" { sim[j].state = "running"; sim[j].beating = !sim[j].wedged }
        case .start: if sim[j].state == "shutoff" || sim[j].state == "crashed" { sim[j].state = "running"; sim[j].beating = !sim[j].wedged }
        case .reset: sim[j].state = "running"; sim[j].wedged = false; sim[j].beating = true
        case .replace: break
        }
      }
      for key in d.replace where rng.next() % 8 != 0 {
        guard let j = Int(key.dropFirst(4)).map({ $0 - 1 }) else { continue }
        sim[j] = SimNode(host: sim[j].host, generation: sim[j].generation + 1)
      }
    }
    // The model exercised the ladder (a run that repaired nothing would prove nothing).
    #expect((acted[.start] ?? 0) + (acted[.resume] ?? 0) > 0, "seed \(seed): \(acted)")
  }
}

/// A small seeded generator: the same seed, the same faults.
struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
