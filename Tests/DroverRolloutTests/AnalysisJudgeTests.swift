import DroverModel
import Testing

@testable import DroverRollout

/// #43: the result contract and the gate's decisions, as tables — the anchors' complaints are
/// the rows: an empty answer, NaN, several series, errors, early success, a baseline.
@Suite struct AnalysisJudgeTests {
  static let ratio = AnalysisGate(name: "errors", query: "q", condition: AnalysisCondition(op: .less, value: 0.05))
  static func series(_ pairs: [(String, Double)]) -> QueryAnswer { .vector(pairs.map { .init(labels: ["node": $0.0], value: $0.1) }) }

  @Test(arguments: [
    (QueryAnswer.scalar(0.01), GateMeasurement.Verdict.pass),
    (.scalar(0.2), .fail),
    (.vector([]), .inconclusive),  // on_empty: inconclusive (default)
    (.scalar(.nan), .fail),  // on_nan: fail (default): NaN never passes
    (series([("a", 0.01), ("b", 0.01)]), .fail),  // on_several_series: fail — never the last one silently
    (series([("a", 0.01)]), .pass),
    (.error("connection refused"), .error),
  ] as [(QueryAnswer, GateMeasurement.Verdict)])
  func aScalarGateJudgesEveryShape(_ answer: QueryAnswer, _ expected: GateMeasurement.Verdict) {
    #expect(AnalysisJudge.judge(answer, baseline: nil, gate: Self.ratio, nodes: ["a"]).verdict == expected)
  }

  @Test func theOutcomesAreTheContracts() {
    var gate = Self.ratio
    gate.onEmpty = .pass
    gate.onNaN = .inconclusive
    gate.onSeveralSeries = .inconclusive
    #expect(AnalysisJudge.judge(.vector([]), baseline: nil, gate: gate, nodes: []).verdict == .pass)
    #expect(AnalysisJudge.judge(.scalar(.nan), baseline: nil, gate: gate, nodes: []).verdict == .inconclusive)
    #expect(AnalysisJudge.judge(Self.series([("a", 0), ("b", 0)]), baseline: nil, gate: gate, nodes: []).verdict == .inconclusive)
  }

  @Test func aPerNodeGateJudgesEachNodeOfTheStep() {
    var gate = Self.ratio
    gate.expect = .perNode
    let good = AnalysisJudge.judge(Self.series([("web-1-g2", 0.01), ("web-2", 0.9)]), baseline: nil, gate: gate, nodes: ["web-1-g2"])
    #expect(good.verdict == .pass && good.values == ["web-1-g2": 0.01], "series of nodes outside the step are not judged: \(good.why)")
    let bad = AnalysisJudge.judge(Self.series([("web-1-g2", 0.01), ("web-2-g2", 0.3)]), baseline: nil, gate: gate, nodes: ["web-1-g2", "web-2-g2"])
    #expect(bad.verdict == .fail && bad.why.contains("web-2-g2: 0.3 breaks < 0.05"), "\(bad.why)")
    let missing = AnalysisJudge.judge(Self.series([("web-1-g2", 0.01)]), baseline: nil, gate: gate, nodes: ["web-1-g2", "web-2-g2"])
    #expect(missing.verdict == .inconclusive && missing.why.contains("web-2-g2: no series"), "\(missing.why)")
    let twice = AnalysisJudge.judge(Self.series([("web-1-g2", 0.01), ("web-1-g2", 0.02)]), baseline: nil, gate: gate, nodes: ["web-1-g2"])
    #expect(twice.verdict == .fail, "\(twice.why)")
    #expect(AnalysisJudge.judge(.scalar(0), baseline: nil, gate: gate, nodes: ["web-1-g2"]).verdict == .fail, "a scalar is not a series per node")
  }

  @Test func aBaselineComparesTheNewNodesWithTheOld() {
    var gate = Self.ratio
    gate.condition = AnalysisCondition(op: .lessOrEqual, value: 1.2, relative: true)
    gate.baseline = "old"
    #expect(AnalysisJudge.judge(.scalar(0.011), baseline: .scalar(0.01), gate: gate, nodes: []).verdict == .pass)
    let worse = AnalysisJudge.judge(.scalar(0.02), baseline: .scalar(0.01), gate: gate, nodes: [])
    #expect(worse.verdict == .fail && worse.why.contains("baseline 0.01"), "\(worse.why)")
    #expect(AnalysisJudge.judge(.scalar(0.02), baseline: .vector([]), gate: gate, nodes: []).verdict == .inconclusive, "an empty baseline is the contract's")
    #expect(AnalysisJudge.judge(.scalar(0.02), baseline: .error("down"), gate: gate, nodes: []).verdict == .error)
  }

  @Test(arguments: [
    ("< 0.01", "< 0.01"), ("<= baseline * 1.2", "<= baseline * 1.2"), (">=baseline", ">= baseline"), ("!= 0", "!= 0"), ("> 99.5", "> 99.5"),
  ])
  func conditionsArePlainComparisons(_ text: String, _ shown: String) throws {
    let c = try AnalysisCondition.parse(text).get()
    #expect(c.description == shown)
  }

  @Test(arguments: ["0.01", "< x", "<= baseline + 1", "< nan", "=~ 1", "< 1 and > 0"])
  func anythingElseIsRefused(_ text: String) {
    #expect((try? AnalysisCondition.parse(text).get()) == nil)
  }

  static func m(_ v: GateMeasurement.Verdict, at t: Double = 0) -> GateMeasurement {
    GateMeasurement(gate: "errors", wave: 0, time: t, query: "q", values: [:], baseline: nil, verdict: v, why: v.rawValue)
  }

  /// The gate's decisions over its measurements, as golden rows.
  @Test func theGateDecides() {
    var gate = Self.ratio
    gate.interval = .seconds(5)
    #expect(nextGateStep(gate, measurements: [], elapsed: 0, soak: 30) == .measure(after: 0))
    #expect(nextGateStep(gate, measurements: [Self.m(.pass)], elapsed: 1, soak: 30) == .measure(after: 5))
    #expect(nextGateStep(gate, measurements: [Self.m(.pass)], elapsed: 28, soak: 30) == .measure(after: 2), "the last measurement lands at the soak's end")
    if case .passed = nextGateStep(gate, measurements: [Self.m(.pass)], elapsed: 30, soak: 30) {} else { Issue.record("a good soak passes") }
    if case .failed = nextGateStep(gate, measurements: [Self.m(.pass), Self.m(.fail)], elapsed: 5, soak: 30) {} else { Issue.record("failure_limit 0: one failure fails") }
    gate.failureLimit = 1
    #expect(nextGateStep(gate, measurements: [Self.m(.fail)], elapsed: 5, soak: 30) == .measure(after: 5), "one failure tolerated")
    #expect(nextGateStep(gate, measurements: [Self.m(.inconclusive)], elapsed: 5, soak: 30) == .measure(after: 5), "no data yet: measured again")
    if case .inconclusive = nextGateStep(gate, measurements: [Self.m(.inconclusive)], elapsed: 30, soak: 30) {} else { Issue.record("undecided at the end pauses") }
    // Errors: retried with backoff 1, 2, 4 s; the fourth in a row pauses — never a pass, never a failure.
    #expect(nextGateStep(gate, measurements: [Self.m(.error)], elapsed: 1, soak: 30) == .measure(after: 1))
    #expect(nextGateStep(gate, measurements: [Self.m(.error), Self.m(.error)], elapsed: 2, soak: 30) == .measure(after: 2))
    #expect(nextGateStep(gate, measurements: [Self.m(.error), Self.m(.error), Self.m(.error)], elapsed: 4, soak: 30) == .measure(after: 4))
    if case .unavailable = nextGateStep(gate, measurements: Array(repeating: Self.m(.error), count: 4), elapsed: 8, soak: 30) {} else {
      Issue.record("four errors in a row pause")
    }
    #expect(nextGateStep(gate, measurements: [Self.m(.pass), Self.m(.error)], elapsed: 40, soak: 30) == .measure(after: 1), "an error at the end never passes the gate")
    if case .passed = nextGateStep(gate, measurements: [Self.m(.error), Self.m(.pass)], elapsed: 40, soak: 30) {} else { Issue.record("an answer after an error counts") }
    gate.successAfter = 2
    if case .passed(let why) = nextGateStep(gate, measurements: [Self.m(.pass), Self.m(.pass)], elapsed: 5, soak: 300) {
      #expect(why.contains("early"))
    } else {
      Issue.record("success_after 2 ends the gate early")
    }
  }

  @Test func aStepPassesOnlyWhenEveryGatePassed() {
    #expect(StepAnalysis.combine([.passed("a"), .passed("b")]) == .passed(["a", "b"]))
    #expect(StepAnalysis.combine([.passed("a"), .measure(after: 1)]) == .measuring)
    #expect(StepAnalysis.combine([.unavailable("down"), .failed("bad")]) == .failed("bad"), "a failure decides before a pause")
    #expect(StepAnalysis.combine([.inconclusive("?"), .measure(after: 1)]) == .paused("?"))
  }

  @Test func aMeasurementReadsBackFromTheJournalWithItsNaN() {
    let m = GateMeasurement(gate: "g", wave: 1, time: 5, query: "q", values: ["web-1-g2": .nan, "web-2-g2": 0.5], baseline: .infinity, verdict: .fail, why: "NaN")
    let back = GateMeasurement(journalText: m.journalText)
    #expect(back?.values["web-2-g2"] == 0.5 && back?.values["web-1-g2"]?.isNaN == true && back?.baseline == .infinity)
  }

  /// The review's cases: none of these may pass.
  @Test func nothingThatIsNotAGoodNumberPasses() {
    var gate = Self.ratio
    gate.condition = AnalysisCondition(op: .greater, value: 0)
    #expect(AnalysisJudge.judge(.scalar(.infinity), baseline: nil, gate: gate, nodes: []).verdict == .fail, "+Inf is not a number (on_nan: fail)")
    var relative = Self.ratio
    relative.condition = AnalysisCondition(op: .lessOrEqual, value: 1.2, relative: true)
    relative.baseline = "old"
    relative.onEmpty = .pass
    #expect(AnalysisJudge.judge(.scalar(99), baseline: .vector([]), gate: relative, nodes: []).verdict == .inconclusive, "no baseline: never a pass")
    #expect(AnalysisJudge.judge(.scalar(0.01), baseline: .scalar(.infinity), gate: relative, nodes: []).verdict == .fail, "an infinite baseline is no bound")
    var perNode = Self.ratio
    perNode.expect = .perNode
    #expect(AnalysisJudge.judge(Self.series([("x", 0)]), baseline: nil, gate: perNode, nodes: []).verdict == .inconclusive, "no node to judge")
    #expect(AnalysisVariables.regex([]) == ".^", "an empty list matches no value, not every series without the label")
    var tolerant = Self.ratio
    tolerant.failureLimit = 1
    #expect(nextGateStep(tolerant, measurements: [Self.m(.pass), Self.m(.fail)], elapsed: 30, soak: 30) == .measure(after: 10), "a tolerated failure last is measured again")
    if case .passed = nextGateStep(tolerant, measurements: [Self.m(.fail), Self.m(.pass)], elapsed: 30, soak: 30) {} else { Issue.record("a good last answer passes") }
  }
}

