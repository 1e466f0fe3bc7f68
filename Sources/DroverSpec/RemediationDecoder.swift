import DroverModel
import LibYAML

/// Decodes `heartbeat:` and `remediation:` (self-healing, `drover heal`).
enum RemediationDecoder {
  static let sources = ["console", "agent", "ssh"]

  /// `heartbeat: {source: console, pattern: "DROVER HEARTBEAT", interval: 10s, missed: 3}`.
  static func heartbeat(_ node: YAMLNode, context: inout DecodeContext) -> HeartbeatSpec? {
    var reader = MappingReader(node, what: "heartbeat", context: &context)
    guard reader.isMapping else { return nil }
    var source: HeartbeatSpec.Source?
    if let s = reader.required("source", context: &context, hint: "one of: \(sources.joined(separator: ", "))"), let name = context.string(s, "source") {
      switch name {
      case "console":
        let p = reader.optional("pattern")
        let pattern = p.flatMap { context.string($0, "pattern") } ?? "DROVER HEARTBEAT"
        if let why = PatternCheck.refusal(pattern) {
          context.error("spec.regex", "pattern '\(pattern)' cannot be used: \(why)", at: p ?? s, hint: PatternCheck.hint)
        } else {
          source = .console(pattern: pattern)
        }
      case "agent": source = .agent
      case "ssh":
        if let c = reader.required("command", context: &context, hint: "what to run on the node, for example: command: 'true'"),
          let command = context.string(c, "command")
        {
          if command.isEmpty || command.utf8.count > 4096 || command.contains("\0") {
            context.error("spec.range", "a heartbeat's command must be 1 to 4096 bytes", at: c)
          } else {
            source = .ssh(command: command)
          }
        }
      default:
        for key in ["pattern", "command"] { _ = reader.optional(key) }
        context.error(
          "spec.heartbeat.source", "unknown heartbeat source '\(name)'", at: s,
          hint: nearest(name, in: sources).map { "did you mean '\($0)'?" } ?? "one of: \(sources.joined(separator: ", "))")
      }
    }
    if case .console = source {
    } else {
      if let p = reader.optional("pattern"), source != nil { context.error("spec.key", "pattern belongs to a console heartbeat", at: p) }
    }
    if case .ssh = source {} else if let c = reader.optional("command"), source != nil {
      context.error("spec.key", "command belongs to an ssh heartbeat", at: c)
    }
    var spec = source.map { HeartbeatSpec(source: $0) }
    if let n = reader.optional("interval"), let v = context.timeSpan(n, "interval", max: .minutes(60)) {
      if v.milliseconds < 100 {
        context.error("spec.range", "interval must be at least 100ms", at: n)
      } else {
        spec?.interval = v
      }
    }
    if let n = reader.optional("missed"), let v = context.integer(n, "missed", in: 1...100) { spec?.missed = v }
    reader.finish(context: &context)
    return spec
  }

  /// `remediation: {unhealthy_after: 5m, max_unhealthy: 40%, max_in_flight: 1, cooldown: 10m}`.
  static func remediation(_ node: YAMLNode, context: inout DecodeContext) -> RemediationSpec? {
    var reader = MappingReader(node, what: "remediation", context: &context)
    guard reader.isMapping else { return nil }
    var spec = RemediationSpec()
    if let n = reader.optional("unhealthy_after"), let v = context.timeSpan(n, "unhealthy_after") { spec.unhealthyAfter = v }
    if let n = reader.optional("max_unhealthy"), let v = context.quantity(n, "max_unhealthy") { spec.maxUnhealthy = v }
    if let n = reader.optional("max_in_flight"), let v = context.integer(n, "max_in_flight", in: 1...100) { spec.maxInFlight = v }
    if let n = reader.optional("cooldown"), let v = context.timeSpan(n, "cooldown") { spec.cooldown = v }
    if let n = reader.optional("remediate_protected"), let v = context.boolean(n, "remediate_protected") { spec.remediateProtected = v }
    if let n = reader.optional("repair_after"), let v = context.timeSpan(n, "repair_after") { spec.repairAfter = v }
    if let n = reader.optional("repair_grace"), let v = context.timeSpan(n, "repair_grace", max: .minutes(60)) {
      if v.milliseconds < 1000 { context.error("spec.range", "repair_grace must be at least 1s", at: n) } else { spec.repairGrace = v }
    }
    if let n = reader.optional("actions") { spec.actions = actions(n, context: &context) ?? spec.actions }
    reader.finish(context: &context)
    return spec
  }

  /// `actions: [resume, start, reset, replace]`: known rungs, each once, at least one; written in
  /// any order, used gentlest first.
  static func actions(_ node: YAMLNode, context: inout DecodeContext) -> [RepairRung]? {
    guard case .sequence(let items) = node.content else {
      context.error("spec.type", "actions must be a list such as [resume, start, reset, replace], not \(node.kindDescription)", at: node)
      return nil
    }
    let known = RepairRung.allCases.map(\.rawValue)
    var rungs: [RepairRung] = []
    for item in items {
      guard let name = context.string(item, "each item of actions") else { return nil }
      guard let rung = RepairRung(rawValue: name) else {
        context.error(
          "spec.remediation.action", "unknown remediation action '\(name)'", at: item,
          hint: nearest(name, in: known).map { "did you mean '\($0)'?" } ?? "one of: \(known.joined(separator: ", "))")
        return nil
      }
      if rungs.contains(rung) {
        context.error("spec.remediation.action", "remediation action '\(name)' is listed twice", at: item)
        return nil
      }
      rungs.append(rung)
    }
    if rungs.isEmpty {
      context.error("spec.remediation.action", "actions must name at least one of: \(known.joined(separator: ", "))", at: node)
      return nil
    }
    return RepairRung.allCases.filter(rungs.contains)
  }
}
