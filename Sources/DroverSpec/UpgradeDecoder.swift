import DroverModel
import LibYAML

/// Decodes `upgrade:`, the rolling-replacement strategy.
enum UpgradeDecoder {
  static func decode(_ node: YAMLNode, context: inout DecodeContext) -> UpgradeStrategy {
    var reader = MappingReader(node, what: "upgrade", context: &context)
    var s = UpgradeStrategy()
    guard reader.isMapping else { return s }
    if let n = reader.optional("canary"), let v = context.quantity(n, "canary") { s.canary = v }
    if let n = reader.optional("waves") {
      if case .sequence(let items) = n.content, !items.isEmpty {
        let sizes = items.compactMap { context.quantity($0, "each wave", allowZero: false) }
        if sizes.count == items.count { s.waves = sizes }
      } else {
        context.error("spec.type", "waves must be a non-empty list of sizes such as [1, 50%]", at: n)
      }
    }
    let surgeNode = reader.optional("max_surge")
    if let n = surgeNode, let v = context.quantity(n, "max_surge") { s.maxSurge = v }
    if let n = reader.optional("max_unavailable"), let v = context.quantity(n, "max_unavailable") { s.maxUnavailable = v }
    if let n = reader.optional("soak"), let v = context.timeSpan(n, "soak") { s.soak = v }
    if let n = reader.optional("health_timeout"), let v = context.timeSpan(n, "health_timeout") { s.healthTimeout = v }
    if let n = reader.optional("on_budget_exceeded"),
      let v = enumValue(n, "on_budget_exceeded", UpgradeStrategy.OnBudgetExceeded.self, &context)
    {
      s.onBudgetExceeded = v
    }
    if let n = reader.optional("keep_previous") { s.keepPrevious = keepPrevious(n, context: &context) }
    if let n = reader.optional("analysis") { s.analysis = AnalysisDecoder.decode(n, context: &context) }
    if s.maxSurge == .count(0) || s.maxSurge == .percent(0), s.maxUnavailable == .count(0) || s.maxUnavailable == .percent(0) {
      context.error(
        "spec.upgrade.deadlock", "max_surge and max_unavailable cannot both be 0", at: surgeNode ?? node,
        hint: "a rollout must either add a node before removing one (max_surge: 1) or take one down (max_unavailable: 1)")
    }
    reader.finish(context: &context)
    return s
  }

  /// `keep_previous: 3` / `50%`, or `{nodes: 3, for: 2h, state: hibernated | stopped}` (#45):
  /// kept at most 30 days.
  static func keepPrevious(_ node: YAMLNode, context: inout DecodeContext) -> KeepPrevious? {
    if node.scalar != nil {
      return context.quantity(node, "keep_previous").map { KeepPrevious(nodes: $0) }
    }
    var reader = MappingReader(node, what: "keep_previous", context: &context)
    guard reader.isMapping else { return nil }
    let nodes = reader.required("nodes", context: &context, hint: "for example: keep_previous: {nodes: 3, for: 2h}").flatMap {
      context.quantity($0, "keep_previous.nodes")
    }
    let duration = reader.optional("for").flatMap { context.timeSpan($0, "keep_previous.for", max: .minutes(30 * 24 * 60)) }
    let shutdown = reader.optional("shutdown_timeout").flatMap { context.timeSpan($0, "keep_previous.shutdown_timeout", max: .minutes(10)) }
    let state = reader.optional("state").flatMap { enumValue($0, "keep_previous.state", KeptState.self, &context) }
    reader.finish(context: &context)
    guard let nodes else { return nil }
    return KeepPrevious(nodes: nodes, duration: duration ?? .minutes(60), shutdownTimeout: shutdown ?? .seconds(30), state: state ?? .hibernated)
  }
}
