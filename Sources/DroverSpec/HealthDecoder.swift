import DroverModel
import LibYAML

/// Decodes `health:`, a list of checks such as `- type: console` / `pattern: "READY"`.
enum HealthDecoder {
  static let kinds = ["console", "tcp", "http", "command", "ssh"]

  static func decodeList(_ node: YAMLNode, context: inout DecodeContext) -> [HealthCheckSpec] {
    guard case .sequence(let items) = node.content else {
      context.error("spec.type", "health must be a list of checks, not \(node.kindDescription)", at: node)
      return []
    }
    return items.compactMap { decode($0, context: &context) }
  }

  static func decode(_ node: YAMLNode, context: inout DecodeContext) -> HealthCheckSpec? {
    var reader = MappingReader(node, what: "health check", context: &context)
    guard reader.isMapping else { return nil }
    var kind: HealthCheckSpec.Kind?
    if let typeNode = reader.required("type", context: &context, hint: "one of: \(kinds.joined(separator: ", "))"),
      let type = context.string(typeNode, "type")
    {
      switch type {
      case "console":
        if let p = reader.required("pattern", context: &context), let pattern = context.string(p, "pattern") {
          if let why = PatternCheck.refusal(pattern) {
            context.error("spec.regex", "pattern '\(pattern)' cannot be used: \(why)", at: p, hint: PatternCheck.hint)
          } else {
            kind = .console(pattern: pattern)
          }
        }
      case "tcp":
        if let p = reader.required("port", context: &context), let port = context.integer(p, "port", in: 1...65535) {
          kind = .tcp(port: port)
        }
      case "http":
        let port = reader.optional("port").flatMap { context.integer($0, "port", in: 1...65535) } ?? 80
        let path = reader.optional("path").flatMap { context.string($0, "path") } ?? "/"
        let status = reader.optional("status").flatMap { context.integer($0, "status", in: 100...599) } ?? 200
        var body: String?
        if let b = reader.optional("body"), let pattern = context.string(b, "body") {
          if let why = PatternCheck.refusal(pattern) {
            context.error("spec.regex", "body '\(pattern)' cannot be used: \(why)", at: b, hint: PatternCheck.hint)
          }
          body = pattern
        }
        if !path.hasPrefix("/") {
          context.error("spec.type", "path must start with '/'", at: reader.optional("path") ?? node)
        }
        kind = .http(port: port, path: path, expectStatus: status, bodyPattern: body)
      case "command":
        if let c = reader.required("command", context: &context), let argv = argvList(c, context: &context) {
          kind = .command(argv: argv)
        }
      case "ssh":
        var output: String?
        if let o = reader.optional("output"), let pattern = context.string(o, "output") {
          if let why = PatternCheck.refusal(pattern) {
            context.error("spec.regex", "output '\(pattern)' cannot be used: \(why)", at: o, hint: PatternCheck.hint)
          }
          output = pattern
        }
        if let c = reader.required("command", context: &context, hint: "what to run on the node, for example: command: systemctl is-active ssh"),
          let command = context.string(c, "command")
        {
          if command.isEmpty || command.utf8.count > 4096 || command.contains("\0") {
            context.error("spec.range", "an ssh check's command must be 1 to 4096 bytes", at: c)
          } else {
            kind = .ssh(command: command, outputPattern: output)
          }
        }
      default:
        // The type is wrong, not the fields: accept every kind's fields to avoid noise.
        for key in ["pattern", "port", "path", "status", "body", "command", "output"] { _ = reader.optional(key) }
        context.error(
          "spec.health.type", "unknown health check type '\(type)'", at: typeNode,
          hint: nearest(type, in: kinds).map { "did you mean '\($0)'?" } ?? "one of: \(kinds.joined(separator: ", "))")
      }
    }
    var check = kind.map { HealthCheckSpec(kind: $0) }
    if let t = reader.optional("timeout"), let v = context.timeSpan(t, "timeout") { check?.timeout = v }
    if let t = reader.optional("interval"), let v = context.timeSpan(t, "interval") { check?.interval = v }
    if let t = reader.optional("retries"), let v = context.integer(t, "retries", in: 0...1000) { check?.retries = v }
    reader.finish(context: &context)
    return check
  }

  /// A command as a list (`[sh, -c, "…"]`) or one string run by `/bin/sh -c`.
  static func argvList(_ node: YAMLNode, context: inout DecodeContext) -> [String]? {
    if case .scalar(let s) = node.content, !node.isNull { return ["/bin/sh", "-c", s] }
    guard let list = context.stringList(node, "command") else { return nil }
    if list.isEmpty {
      context.error("spec.range", "command must not be empty", at: node)
      return nil
    }
    return list
  }
}
