import DroverBasics
import DroverModel
import Foundation
import LibYAML

/// Decodes `upgrade.analysis:`, the gates on the service's metrics (#43). Every field's bad value
/// is a located error; a gate list that names one gate twice is one too.
enum AnalysisDecoder {
  static func decode(_ node: YAMLNode, context: inout DecodeContext) -> [AnalysisGate] {
    guard case .sequence(let items) = node.content else {
      context.error("spec.type", "analysis must be a list of gates (name, query, condition)", at: node)
      return []
    }
    var gates: [AnalysisGate] = []
    for item in items {
      guard let gate = gate(item, context: &context) else { continue }
      if gates.contains(where: { $0.name == gate.name }) {
        context.error("spec.duplicate", "analysis gate \(gate.name) is defined twice", at: item)
        continue
      }
      gates.append(gate)
    }
    if gates.count > 16 { context.error("spec.range", "at most 16 analysis gates per pool", at: node) }
    return gates
  }

  static func gate(_ node: YAMLNode, context: inout DecodeContext) -> AnalysisGate? {
    var r = MappingReader(node, what: "analysis gate", context: &context)
    guard r.isMapping else { return nil }
    var name: String?
    if let n = r.required("name", context: &context, hint: "for example: name: error-ratio") { name = context.name(n, "analysis name") }
    var query: String?
    if let n = r.required("query", context: &context, hint: "a PromQL query; {{nodes}} is a regex of the step's nodes") {
      query = Self.query(n, "analysis query", context: &context)
    }
    var condition: AnalysisCondition?
    if let n = r.required("condition", context: &context, hint: "for example: condition: \"< 0.01\""), let text = context.string(n, "analysis condition") {
      switch AnalysisCondition.parse(text) {
      case .success(let c): condition = c
      case .failure(let p):
        context.error(
          "spec.analysis.condition", "condition '\(Terminal.printable(String(text.prefix(60))))' is not a comparison: \(p.why)", at: n,
          hint: "for example: \"< 0.01\" or \"<= baseline * 1.2\"")
      }
    }
    var gate = AnalysisGate(name: name ?? "", query: query ?? "", condition: condition ?? AnalysisCondition(op: .less, value: 0))
    if let n = r.optional("expect"), let v = enumValue(n, "expect", AnalysisGate.Expect.self, &context) { gate.expect = v }
    if let n = r.optional("node_label"), let v = context.string(n, "node_label") {
      if isLabelName(v) {
        gate.nodeLabel = v
      } else {
        context.error("spec.analysis.label", "node_label '\(Terminal.printable(String(v.prefix(60))))' is not a Prometheus label name", at: n, hint: "letters, digits and '_', not starting with a digit")
      }
    }
    let baselineNode = r.optional("baseline")
    if let n = baselineNode { gate.baseline = Self.query(n, "analysis baseline", context: &context) }
    if let n = r.optional("interval"), let v = context.timeSpan(n, "analysis interval", max: .minutes(60)) {
      if v < .seconds(1) { context.error("spec.range", "analysis interval must be at least 1s", at: n) } else { gate.interval = v }
    }
    if let n = r.optional("failure_limit"), let v = context.integer(n, "failure_limit", in: 0...1000) { gate.failureLimit = v }
    if let n = r.optional("consecutive_errors"), let v = context.integer(n, "consecutive_errors", in: 1...100) { gate.consecutiveErrors = v }
    if let n = r.optional("success_after"), let v = context.integer(n, "success_after", in: 1...1000) { gate.successAfter = v }
    if let n = r.optional("on_empty"), let v = enumValue(n, "on_empty", AnalysisGate.Outcome.self, &context) { gate.onEmpty = v }
    if let n = r.optional("on_nan"), let v = enumValue(n, "on_nan", AnalysisGate.Outcome.self, &context) { gate.onNaN = v }
    if let n = r.optional("on_several_series"), let v = enumValue(n, "on_several_series", AnalysisGate.Outcome.self, &context) {
      gate.onSeveralSeries = v
    }
    if let condition, condition.relative, baselineNode == nil {
      context.error(
        "spec.analysis.baseline", "condition '\(condition)' compares with the baseline, but the gate has no baseline query", at: node,
        hint: "add baseline: a query for the nodes not yet replaced, such as one over {{old_nodes}}")
    }
    r.finish(context: &context)
    guard name != nil, query != nil, condition != nil else { return nil }
    return gate
  }

  /// A Prometheus label name: ASCII letters, digits and '_', not starting with a digit.
  static func isLabelName(_ v: String) -> Bool {
    let scalars = Array(v.unicodeScalars)
    let digits: ClosedRange<Unicode.Scalar> = "0"..."9"
    let lower: ClosedRange<Unicode.Scalar> = "a"..."z"
    let upper: ClosedRange<Unicode.Scalar> = "A"..."Z"
    guard let first = scalars.first, !digits.contains(first), scalars.count <= 100 else { return false }
    return scalars.allSatisfy { digits.contains($0) || lower.contains($0) || upper.contains($0) || $0 == "_" }
  }

  static func query(_ node: YAMLNode, _ field: String, context: inout DecodeContext) -> String? {
    guard let text = context.string(node, field) else { return nil }
    if text.utf8.count > 4096 {
      context.error("spec.range", "\(field) is longer than 4096 bytes", at: node)
      return nil
    }
    if let why = AnalysisVariables.problem(text) ?? (text.contains { $0.isNewline || $0 == "\0" } ? "it spans lines" : nil) {
      context.error("spec.analysis.query", "\(field) '\(Terminal.printable(String(text.prefix(60))))' is not a query template: \(why)", at: node)
      return nil
    }
    return text
  }
}

extension AnalysisGate.Expect: CaseIterable {
  public static let allCases: [Self] = [.scalar, .perNode]
}
extension AnalysisGate.Outcome: CaseIterable {
  public static let allCases: [Self] = [.pass, .fail, .inconclusive]
}
