import Foundation

/// An analysis gate of a pool's `upgrade:` (#43): a PromQL query against the project's
/// Prometheus, run after the canary and after each wave, every `interval` while the rollout's
/// `soak` lasts, with an explicit contract for what its answer must look like. The anchors left
/// that contract to expression authors (an empty vector aborting Argo Rollouts, NaN passing in
/// Flagger, several series collapsed to the last): here every shape has a declared outcome.
public struct AnalysisGate: Sendable, Hashable, Codable {
  /// What the query must answer: one number, or one series per node of the step (by a label).
  public enum Expect: String, Sendable, Hashable, Codable { case scalar, perNode = "per_node" }
  /// What an answer the contract does not cover counts as.
  public enum Outcome: String, Sendable, Hashable, Codable { case pass, fail, inconclusive }

  public var name: String
  /// The PromQL, a template over the gate variables (`AnalysisVariables`).
  public var query: String
  public var expect: Expect
  /// The label naming the node in a `per_node` answer (default `node`).
  public var nodeLabel: String
  /// What each value must satisfy.
  public var condition: AnalysisCondition
  /// The query whose value is `baseline` in the condition (the old nodes, say), when it uses one.
  public var baseline: String?
  public var interval: TimeSpan
  /// Failed measurements tolerated; one more fails the gate (default 0).
  public var failureLimit: Int
  /// Query errors in a row (retried with backoff) after which the rollout pauses (default 4).
  public var consecutiveErrors: Int
  /// Passing measurements in a row that end the gate early (nil: it runs for the whole soak).
  public var successAfter: Int?
  public var onEmpty: Outcome
  public var onNaN: Outcome
  public var onSeveralSeries: Outcome

  /// `onNaN` is spelled so the JSON key reads `on_nan`.
  enum CodingKeys: String, CodingKey {
    case name, query, expect, nodeLabel, condition, baseline, interval, failureLimit, consecutiveErrors, successAfter, onEmpty
    case onNaN = "onNan"
    case onSeveralSeries
  }

  public init(
    name: String, query: String, expect: Expect = .scalar, nodeLabel: String = "node", condition: AnalysisCondition, baseline: String? = nil,
    interval: TimeSpan = .seconds(10), failureLimit: Int = 0, consecutiveErrors: Int = 4, successAfter: Int? = nil,
    onEmpty: Outcome = .inconclusive, onNaN: Outcome = .fail, onSeveralSeries: Outcome = .fail
  ) {
    self.name = name
    self.query = query
    self.expect = expect
    self.nodeLabel = nodeLabel
    self.condition = condition
    self.baseline = baseline
    self.interval = interval
    self.failureLimit = failureLimit
    self.consecutiveErrors = consecutiveErrors
    self.successAfter = successAfter
    self.onEmpty = onEmpty
    self.onNaN = onNaN
    self.onSeveralSeries = onSeveralSeries
  }
}

/// A plain comparison, `< 0.01` or `<= baseline * 1.2`: an operator, then a number or the
/// baseline times a factor. No expression language: what it says is all it can do.
public struct AnalysisCondition: Sendable, Hashable, Codable, CustomStringConvertible {
  public enum Operator: String, Sendable, Hashable, Codable, CaseIterable {
    case lessOrEqual = "<=", greaterOrEqual = ">=", equal = "==", notEqual = "!=", less = "<", greater = ">"
  }
  public var op: Operator
  /// The number compared with, or the baseline's factor when `relative`.
  public var value: Double
  /// `baseline * value` rather than `value`.
  public var relative: Bool

  public init(op: Operator, value: Double, relative: Bool = false) {
    self.op = op
    self.value = value
    self.relative = relative
  }

  /// Parses `OP NUMBER`, `OP baseline` or `OP baseline * NUMBER`; nil with why otherwise.
  public static func parse(_ text: String) -> Result<AnalysisCondition, ConditionProblem> {
    let t = text.trimmingCharacters(in: .whitespaces)
    guard let op = Operator.allCases.first(where: { t.hasPrefix($0.rawValue) }) else {
      return .failure(ConditionProblem(why: "it must start with <, <=, >, >=, == or !="))
    }
    let rest = t.dropFirst(op.rawValue.count).trimmingCharacters(in: .whitespaces)
    if rest.hasPrefix("baseline") {
      let tail = rest.dropFirst("baseline".count).trimmingCharacters(in: .whitespaces)
      if tail.isEmpty { return .success(AnalysisCondition(op: op, value: 1, relative: true)) }
      guard tail.hasPrefix("*"), let factor = Double(tail.dropFirst().trimmingCharacters(in: .whitespaces)), factor.isFinite else {
        return .failure(ConditionProblem(why: "after 'baseline' only '* NUMBER' may follow"))
      }
      return .success(AnalysisCondition(op: op, value: factor, relative: true))
    }
    guard let number = Double(rest), number.isFinite else {
      return .failure(ConditionProblem(why: "'\(rest.prefix(40))' is not a number or 'baseline [* NUMBER]'"))
    }
    return .success(AnalysisCondition(op: op, value: number))
  }

  public struct ConditionProblem: Error, Sendable { public var why: String }

  /// Whether `x` satisfies it (`baseline` is the baseline query's value when `relative`).
  public func holds(_ x: Double, baseline: Double?) -> Bool {
    let bound = relative ? (baseline ?? .nan) * value : value
    guard x.isFinite, bound.isFinite else { return false }
    switch op {
    case .less: return x < bound
    case .lessOrEqual: return x <= bound
    case .greater: return x > bound
    case .greaterOrEqual: return x >= bound
    case .equal: return x == bound
    case .notEqual: return x != bound
    }
  }

  public var description: String {
    func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
    return "\(op.rawValue) " + (relative ? (value == 1 ? "baseline" : "baseline * \(number(value))") : number(value))
  }
}

/// The variables of an analysis query. A query runs once for a whole step, so each node variable
/// of the spec (`NodeVariables`: `{{node}}`, `{{domain}}`, `{{hostname}}`, `{{address}}`,
/// `{{pool}}`) stands for its values over the step's new nodes, as one regex alternation
/// (`{{hostname}}` → `web-1-g2|web-2-g2`; `{{pool}}` is one name); `{{nodes}}` is `{{hostname}}`'s
/// (the name a node's series carry), `{{old_nodes}}` the hostnames of the nodes not replaced yet
/// (a baseline), and `{{image}}` / `{{previous_image}}` the images the step went to and came from.
/// One query per interval, whatever the step's size.
public enum AnalysisVariables {
  public static let names = NodeVariables.names + ["nodes", "old_nodes", "image", "previous_image"]

  /// `names` as a PromQL regex alternation (`web-1-g2|web-2-g2`, anchored by Prometheus). An
  /// empty list is `.^`, which matches no value at all (`^$` would match every series that lacks
  /// the label).
  public static let matchesNothing = ".^"
  public static func regex(_ names: [String]) -> String {
    names.isEmpty ? matchesNothing : names.map(escape).joined(separator: "|")
  }

  static func escape(_ s: String) -> String {
    var out = ""
    for c in s {
      if "\\.^$*+?()[]{}|".contains(c) { out += "\\\\" }
      out.append(c)
    }
    return out
  }

  /// Why `template` is not a query template (an unknown variable, a brace left open), or nil.
  /// The same parser as every node template (`NodeTemplate`), over these names.
  public static func problem(_ template: String) -> String? {
    guard !template.trimmingCharacters(in: .whitespaces).isEmpty else { return "it is empty" }
    if case .failure(let p) = NodeTemplate.parse(template, names: names, what: "an analysis variable", strayClose: false) { return p.why }
    return nil
  }

  /// `template` with the values in `values` (by name; a variable without one is left empty).
  public static func render(_ template: String, _ values: [String: String]) -> String {
    guard case .success(let parts) = NodeTemplate.parse(template, names: names, what: "an analysis variable", strayClose: false) else { return template }
    return parts.map { part in
      switch part {
      case .text(let t): return t
      case .variable(let name): return values[name] ?? ""
      }
    }.joined()
  }
}
