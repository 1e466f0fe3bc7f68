import DroverBasics
import DroverModel
import Foundation
import LibYAML

/// Decodes `window:` (a pool's, or drover.yaml's default) and the mapping form of `error_budget:`
/// (#44). Times are `HH:MM` in the window's zone; exclusions are local date-times of that zone
/// (`2026-12-24T00:00`) or carry an offset (`2026-12-24T00:00+01:00`).
public enum WindowDecoder {
  static func window(_ node: YAMLNode, context: inout DecodeContext) -> MaintenanceWindow? {
    var r = MappingReader(node, what: "window", context: &context)
    guard r.isMapping else { return nil }
    var days: [Int] = []
    if let n = r.optional("days"), let list = context.stringList(n, "window.days") {
      for word in list {
        if let i = MaintenanceWindow.dayNames.firstIndex(of: word.lowercased()) { days.append(i + 1) } else {
          context.error("spec.window.day", "window day '\(Terminal.printable(String(word.prefix(20))))' is not one of \(MaintenanceWindow.dayNames.joined(separator: ", "))", at: n)
        }
      }
    }
    let start = r.required("start", context: &context, hint: "start: \"02:00\"").flatMap { clock($0, "window.start", context: &context) }
    let end = r.required("end", context: &context, hint: "end: \"05:00\"").flatMap { clock($0, "window.end", context: &context) }
    var zone = "UTC"
    var zoneOK = true
    if let n = r.optional("timezone"), let text = context.string(n, "window.timezone") {
      if TimeZone(identifier: text) == nil || text.count > 64 {
        zoneOK = false
        context.error("spec.window.timezone", "time zone '\(Terminal.printable(String(text.prefix(64))))' is not in this system's tz database", at: n, hint: "an IANA name such as Europe/Berlin or UTC")
      } else {
        zone = text
      }
    }
    var exclusions: [MaintenanceWindow.Exclusion] = []
    if let n = r.optional("exclusions") {
      if case .sequence(let items) = n.content {
        for item in items {
          var x = MappingReader(item, what: "window exclusion", context: &context)
          guard x.isMapping else { continue }
          let from = x.required("from", context: &context).flatMap { instant($0, "exclusion from", zone: zone, context: &context) }
          let to = x.required("to", context: &context).flatMap { instant($0, "exclusion to", zone: zone, context: &context) }
          let reason = x.optional("reason").flatMap { context.string($0, "exclusion reason") } ?? "excluded"
          x.finish(context: &context)
          guard let from, let to else { continue }
          if to <= from {
            context.error("spec.window.exclusion", "exclusion '\(Terminal.printable(String(reason.prefix(40))))' ends before it starts", at: item)
            continue
          }
          exclusions.append(.init(from: from, to: to, reason: Terminal.printable(String(reason.prefix(200)))))
        }
      } else {
        context.error("spec.type", "window.exclusions must be a list of {from, to, reason}", at: n)
      }
    }
    var maxWait = MaintenanceWindow.defaultMaxWait
    if let n = r.optional("max_wait"), let span = context.timeSpan(n, "window.max_wait", max: .minutes(7 * 24 * 60)) { maxWait = span }
    r.finish(context: &context)
    guard let start, let end, zoneOK else { return nil }
    if start == end { context.error("spec.window.empty", "window start and end are the same time: it never opens", at: node) }
    return MaintenanceWindow(days: days, start: start, end: end, timezone: zone, exclusions: exclusions, maxWait: maxWait)
  }

  /// `HH:MM` (24 h) → minutes after midnight.
  static func clock(_ node: YAMLNode, _ field: String, context: inout DecodeContext) -> Int? {
    guard let text = context.string(node, field) else { return nil }
    let parts = text.split(separator: ":")
    guard parts.count == 2, parts[0].count <= 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...23).contains(h), (0...59).contains(m) else {
      context.error("spec.window.time", "\(field) '\(Terminal.printable(String(text.prefix(20))))' must be a time HH:MM such as 02:00", at: node)
      return nil
    }
    return h * 60 + m
  }

  /// `YYYY-MM-DDTHH:MM[:SS]` in `zone`, or with a `Z`/`±HH:MM` offset → seconds since 1970.
  static func instant(_ node: YAMLNode, _ field: String, zone: String, context: inout DecodeContext) -> Double? {
    guard let text = context.string(node, field) else { return nil }
    let withOffset = ISO8601DateFormatter()
    if let d = withOffset.date(from: text) { return d.timeIntervalSince1970 }
    let local = DateFormatter()
    local.locale = Locale(identifier: "en_US_POSIX")
    local.timeZone = TimeZone(identifier: zone)
    for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
      local.dateFormat = format
      if let d = local.date(from: text) { return d.timeIntervalSince1970 }
    }
    context.error("spec.window.exclusion", "\(field) '\(Terminal.printable(String(text.prefix(40))))' must be a date-time such as 2026-12-24T00:00", at: node)
    return nil
  }

  /// `error_budget:` — a count or percentage of nodes, or `{nodes, slo: {good, total, objective,
  /// window}, max_burn_rate: [{long, short, factor}], max_wait}`.
  static func errorBudget(_ node: YAMLNode, context: inout DecodeContext) -> (NodeQuantity, BurnRateGate?) {
    guard case .mapping = node.content else { return (context.quantity(node, "error_budget") ?? .count(0), nil) }
    var r = MappingReader(node, what: "error_budget", context: &context)
    let nodes = r.optional("nodes").flatMap { context.quantity($0, "error_budget.nodes") } ?? .count(0)
    var good: String?, total: String?, objective: Double?, period = TimeSpan.minutes(30 * 24 * 60)
    if let n = r.required("slo", context: &context, hint: "slo: {good: QUERY, total: QUERY, objective: 99.9%}") {
      var slo = MappingReader(n, what: "error_budget.slo", context: &context)
      good = slo.required("good", context: &context).flatMap { burnQuery($0, "slo.good", context: &context) }
      total = slo.required("total", context: &context).flatMap { burnQuery($0, "slo.total", context: &context) }
      if let o = slo.required("objective", context: &context, hint: "objective: 99.9%"), let text = context.string(o, "slo.objective") {
        if text.hasSuffix("%"), let p = Double(text.dropLast()), p > 0, p < 100 { objective = p / 100 } else {
          context.error("spec.budget.objective", "slo.objective '\(Terminal.printable(String(text.prefix(20))))' must be a percentage below 100%, such as 99.9%", at: o)
        }
      }
      if let w = slo.optional("window"), let span = context.timeSpan(w, "slo.window", max: .minutes(400 * 24 * 60)) { period = span }
      slo.finish(context: &context)
    }
    var rules: [BurnRule] = []
    if let n = r.required("max_burn_rate", context: &context, hint: "max_burn_rate: [{long: 1h, short: 5m, factor: 14.4}]") {
      if case .sequence(let items) = n.content, !items.isEmpty {
        for item in items {
          var rr = MappingReader(item, what: "max_burn_rate rule", context: &context)
          let long = rr.required("long", context: &context).flatMap { context.timeSpan($0, "long", max: .minutes(60 * 24 * 30)) }
          let short = rr.required("short", context: &context).flatMap { context.timeSpan($0, "short", max: .minutes(60 * 24 * 30)) }
          let factor = rr.required("factor", context: &context).flatMap { context.ratio($0, "factor", in: 0.01...1000) }
          rr.finish(context: &context)
          if let long, let short, let factor {
            if short >= long { context.error("spec.budget.rule", "a rule's short window must be shorter than its long one", at: item) } else {
              rules.append(BurnRule(long: long, short: short, factor: factor))
            }
          }
        }
      } else {
        context.error("spec.type", "max_burn_rate must be a non-empty list of {long, short, factor}", at: n)
      }
    }
    var maxWait = TimeSpan.minutes(30)
    if let n = r.optional("max_wait"), let span = context.timeSpan(n, "max_wait", max: .minutes(7 * 24 * 60)) { maxWait = span }
    r.finish(context: &context)
    guard let good, let total, let objective, !rules.isEmpty else { return (nodes, nil) }
    return (nodes, BurnRateGate(good: good, total: total, objective: objective, window: period, rules: rules, maxWait: maxWait))
  }

  static func burnQuery(_ node: YAMLNode, _ field: String, context: inout DecodeContext) -> String? {
    guard let text = context.string(node, field) else { return nil }
    guard text.contains("{{window}}"), !text.contains("\n"), text.utf8.count <= 4096 else {
      context.error("spec.budget.query", "\(field) must be one line of PromQL over {{window}} (each rule's windows fill it in)", at: node,
        hint: "for example: sum(rate(app_requests_total{code!~\"5..\"}[{{window}}]))")
      return nil
    }
    return text
  }
}
