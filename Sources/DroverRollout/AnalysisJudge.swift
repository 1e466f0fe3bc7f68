import DroverModel
import Foundation

/// What a Prometheus instant query answered, as the adapter read it: one number (a scalar), a
/// vector of labelled series, or why there is no answer (the backend unreachable, a bad query).
public enum QueryAnswer: Sendable, Hashable {
  case scalar(Double)
  case vector([Series])
  case error(String)

  public struct Series: Sendable, Hashable {
    public var labels: [String: String]
    public var value: Double
    public init(labels: [String: String], value: Double) {
      self.labels = labels
      self.value = value
    }
  }
}

/// One measurement of a gate: the resolved query, what it measured, the verdict and why. Sealed in
/// the journal (a `measured` record), shown by `rollout show`, `apply --json` and the textfile.
public struct GateMeasurement: Sendable, Hashable, Codable {
  public enum Verdict: String, Sendable, Hashable, Codable { case pass, fail, inconclusive, error }

  public var gate: String
  public var wave: Int
  /// Seconds since 1970.
  public var time: Double
  public var query: String
  /// Measured values: by node for a `per_node` gate, else one under `value`.
  public var values: [String: Double]
  public var baseline: Double?
  public var verdict: Verdict
  public var why: String

  public init(gate: String, wave: Int, time: Double, query: String, values: [String: Double], baseline: Double?, verdict: Verdict, why: String) {
    self.gate = gate
    self.wave = wave
    self.time = time
    self.query = query
    self.values = values
    self.baseline = baseline
    self.verdict = verdict
    self.why = why
  }
}

extension GateMeasurement {
  static func coder() -> (JSONEncoder, JSONDecoder) {
    let e = JSONEncoder(), d = JSONDecoder()
    e.outputFormatting = .sortedKeys
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
    d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
    return (e, d)
  }

  /// The journal's detail for it: JSON, NaN and infinities written as Prometheus does.
  public var journalText: String { (try? Self.coder().0.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}" }

  public init?(journalText text: String) {
    guard let m = try? Self.coder().1.decode(GateMeasurement.self, from: Data(text.utf8)) else { return nil }
    self = m
  }
}

/// Judges one answer against a gate's contract. Pure.
public enum AnalysisJudge {
  public struct Judgement: Sendable, Hashable, Error {
    public var verdict: GateMeasurement.Verdict
    public var values: [String: Double]
    public var baseline: Double?
    public var why: String
  }

  static func verdict(_ o: AnalysisGate.Outcome) -> GateMeasurement.Verdict {
    switch o {
    case .pass: return .pass
    case .fail: return .fail
    case .inconclusive: return .inconclusive
    }
  }

  /// The worst of several verdicts: error, then fail, then inconclusive, then pass.
  static func worst(_ verdicts: [GateMeasurement.Verdict]) -> GateMeasurement.Verdict {
    for v in [GateMeasurement.Verdict.error, .fail, .inconclusive] where verdicts.contains(v) { return v }
    return .pass
  }

  static func text(_ x: Double) -> String { x.isNaN ? "NaN" : x.isInfinite ? (x > 0 ? "+Inf" : "-Inf") : String(format: "%.6g", x) }

  /// One number from an answer that must be one (the baseline, a scalar gate's value), or the
  /// verdict and reason when it is not.
  static func single(_ answer: QueryAnswer, gate: AnalysisGate, what: String) -> Result<Double, Judgement> {
    func no(_ o: AnalysisGate.Outcome, _ why: String) -> Result<Double, Judgement> {
      .failure(Judgement(verdict: verdict(o), values: [:], baseline: nil, why: why))
    }
    switch answer {
    case .error(let message): return .failure(Judgement(verdict: .error, values: [:], baseline: nil, why: "\(what) query failed: \(message)"))
    case .scalar(let x): return !x.isFinite ? no(gate.onNaN, "\(what) is \(text(x)), not a number (on_nan: \(gate.onNaN.rawValue))") : .success(x)
    case .vector(let series):
      if series.isEmpty { return no(gate.onEmpty, "\(what) answered no series (on_empty: \(gate.onEmpty.rawValue))") }
      if series.count > 1 {
        return no(gate.onSeveralSeries, "\(what) answered \(series.count) series where one was expected (on_several_series: \(gate.onSeveralSeries.rawValue))")
      }
      let x = series[0].value
      return !x.isFinite ? no(gate.onNaN, "\(what) is \(text(x)), not a number (on_nan: \(gate.onNaN.rawValue))") : .success(x)
    }
  }

  /// Judges `answer` (and the baseline's, when the gate has one) for the step's `nodes` (their
  /// names as the node label carries them).
  public static func judge(_ answer: QueryAnswer, baseline baselineAnswer: QueryAnswer?, gate: AnalysisGate, nodes: [String]) -> Judgement {
    var baseline: Double?
    if let baselineAnswer {
      switch single(baselineAnswer, gate: gate, what: "the baseline") {
      case .success(let b): baseline = b
      case .failure(var j):
        // Without a baseline the condition cannot be judged: never a pass, whatever on_* says.
        if j.verdict == .pass { j.verdict = .inconclusive }
        return j
      }
    } else if gate.condition.relative {
      return Judgement(verdict: .error, values: [:], baseline: nil, why: "the condition compares with a baseline, which was not measured")
    }
    func check(_ x: Double) -> (GateMeasurement.Verdict, String) {
      if !x.isFinite { return (verdict(gate.onNaN), "\(text(x)), not a number (on_nan: \(gate.onNaN.rawValue))") }
      let holds = gate.condition.holds(x, baseline: baseline)
      let bound = gate.condition.relative ? " (baseline \(text(baseline ?? .nan)))" : ""
      return (holds ? .pass : .fail, "\(text(x)) \(holds ? "meets" : "breaks") \(gate.condition)\(bound)")
    }
    switch gate.expect {
    case .scalar:
      switch single(answer, gate: gate, what: "the query") {
      case .failure(var j):
        j.baseline = baseline
        return j
      case .success(let x):
        let (v, why) = check(x)
        return Judgement(verdict: v, values: ["value": x], baseline: baseline, why: why)
      }
    case .perNode:
      let series: [QueryAnswer.Series]
      switch answer {
      case .error(let message): return Judgement(verdict: .error, values: [:], baseline: baseline, why: "the query failed: \(message)")
      case .scalar:
        return Judgement(
          verdict: verdict(gate.onSeveralSeries), values: [:], baseline: baseline,
          why: "a per_node gate's query answered one scalar, not a series per node (on_several_series: \(gate.onSeveralSeries.rawValue))")
      case .vector(let s): series = s
      }
      guard !nodes.isEmpty else {
        return Judgement(verdict: .inconclusive, values: [:], baseline: baseline, why: "the step has no new node to judge")
      }
      var values: [String: Double] = [:]
      var verdicts: [GateMeasurement.Verdict] = []
      var reasons: [String] = []
      for node in nodes {
        let mine = series.filter { $0.labels[gate.nodeLabel] == node }
        if mine.isEmpty {
          verdicts.append(verdict(gate.onEmpty))
          reasons.append("\(node): no series with \(gate.nodeLabel)=\"\(node)\" (on_empty: \(gate.onEmpty.rawValue))")
        } else if mine.count > 1 {
          verdicts.append(verdict(gate.onSeveralSeries))
          reasons.append("\(node): \(mine.count) series (on_several_series: \(gate.onSeveralSeries.rawValue))")
        } else {
          values[node] = mine[0].value
          let (v, why) = check(mine[0].value)
          verdicts.append(v)
          reasons.append("\(node): \(why)")
        }
      }
      return Judgement(verdict: worst(verdicts), values: values, baseline: baseline, why: reasons.joined(separator: "; "))
    }
  }
}

/// What a gate does next, decided from its measurements so far in this step. Pure.
public enum GateDecision: Sendable, Hashable {
  /// Measure again after this many seconds.
  case measure(after: Double)
  case passed(String)
  /// The step's nodes count against the error budget.
  case failed(String)
  /// The contract cannot tell: the rollout pauses with this reason (resumable).
  case inconclusive(String)
  /// The backend did not answer `consecutive_errors` times in a row: the rollout pauses — a
  /// backend down is not a bad metric, so it never passes and never rolls back for that.
  case unavailable(String)
}

/// - Parameters:
///   - measurements: this gate's, in this step, oldest first.
///   - elapsed: seconds since the step's analysis began.
///   - soak: how long the gate measures (the rollout's `soak`; 0: one good measurement decides).
public func nextGateStep(_ gate: AnalysisGate, measurements: [GateMeasurement], elapsed: Double, soak: Double) -> GateDecision {
  guard let last = measurements.last else { return .measure(after: 0) }
  let failures = measurements.filter { $0.verdict == .fail }
  if failures.count > gate.failureLimit {
    return .failed(
      "gate \(gate.name): \(failures.count) failed measurement\(failures.count == 1 ? "" : "s") > failure_limit \(gate.failureLimit); last: \(failures.last?.why ?? "")")
  }
  // Undecided (no data yet: a new node's series need a scrape or two) is measured again while
  // the soak lasts; still undecided at its end, the rollout pauses with the reason.
  if last.verdict == .inconclusive {
    if elapsed < soak { return .measure(after: min(gate.interval.seconds, max(0, soak - elapsed))) }
    return .inconclusive("gate \(gate.name) is inconclusive: \(last.why)")
  }
  let errors = measurements.reversed().prefix { $0.verdict == .error }.count
  if errors >= gate.consecutiveErrors {
    return .unavailable("gate \(gate.name): \(errors) queries in a row failed (consecutive_errors \(gate.consecutiveErrors)); last: \(last.why)")
  }
  if errors > 0 {
    // Retried with backoff (1 s, 2 s, 4 s …, at most the interval), even past the soak: an
    // answer, not the clock, ends a gate.
    return .measure(after: min(gate.interval.seconds, pow(2, Double(errors - 1))))
  }
  let passes = measurements.reversed().prefix { $0.verdict == .pass }.count
  if let n = gate.successAfter, passes >= n { return .passed("gate \(gate.name) passed early: \(passes) good measurements in a row; last: \(last.why)") }
  if elapsed >= soak {
    // Only a good last answer passes: a tolerated failure at the end is measured again (each
    // further one counts against failure_limit).
    guard last.verdict == .pass else { return .measure(after: gate.interval.seconds) }
    return .passed("gate \(gate.name) passed: \(measurements.filter { $0.verdict == .pass }.count) of \(measurements.count) measurements good; last: \(last.why)")
  }
  return .measure(after: min(gate.interval.seconds, max(0, soak - elapsed)))
}

/// A step's analysis as a whole: every gate passed, or the first gate that did not decide it.
public enum StepAnalysis: Sendable, Hashable {
  case measuring
  case passed([String])
  case failed(String)
  case paused(String)
  /// A pause or an abort was requested while measuring: the rollout's own decision goes next.
  case interrupted

  /// Combines the gates' decisions: a failure first, then a pause (inconclusive or backend down),
  /// then still measuring; passed only once every gate passed.
  public static func combine(_ decisions: [GateDecision]) -> StepAnalysis {
    for d in decisions { if case .failed(let why) = d { return .failed(why) } }
    for d in decisions {
      switch d {
      case .inconclusive(let why), .unavailable(let why): return .paused(why)
      default: continue
      }
    }
    var passed: [String] = []
    for d in decisions {
      guard case .passed(let why) = d else { return .measuring }
      passed.append(why)
    }
    return .passed(passed)
  }
}
