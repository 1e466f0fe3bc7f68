/// The node variables every template in a spec may use (#42), defined once: `{{node}}` (the index
/// name, `web-1`), `{{domain}}` (the domain's name, `web-1-g2` after a surge replacement),
/// `{{hostname}}` (the guest's hostname as its seed sets it: its domain's name, so the two halves
/// of a surge pair never share one), `{{address}}` (its IPv4 address, when known) and `{{pool}}`.
/// Drain node names use them now; later templates (analysis queries) use the same set.
public struct NodeVariables: Sendable, Hashable {
  public var node: String
  public var domain: String
  public var hostname: String
  public var address: String?
  public var pool: String

  /// Every variable's name, in the order the README lists them.
  public static let names = ["node", "domain", "hostname", "address", "pool"]

  public init(node: String, domain: String, hostname: String, address: String?, pool: String) {
    self.node = node
    self.domain = domain
    self.hostname = hostname
    self.address = address
    self.pool = pool
  }

  /// The variables of the node `o` records (its hostname is its domain's name: `CloudInitSeed`).
  public init(ownership o: NodeOwnership, address: String?) {
    self.init(node: o.key, domain: o.node, hostname: CloudInitSeed.hostname(of: o), address: address ?? o.address, pool: o.pool)
  }

  public subscript(name: String) -> String? {
    switch name {
    case "node": return node
    case "domain": return domain
    case "hostname": return hostname
    case "address": return address
    case "pool": return pool
    default: return nil
    }
  }
}

/// `{{variable}}` templates over `NodeVariables`. Pure.
public enum NodeTemplate {
  enum Part: Equatable {
    case text(String)
    case variable(String)
  }

  struct Problem: Error { var why: String }

  /// The template's parts, or why it is not one (an unknown variable, a brace left open). Other
  /// template kinds (analysis queries) pass their own variable `names`; PromQL may hold a `}}` of
  /// its own, so they pass `strayClose: false`.
  static func parse(
    _ template: String, names: [String] = NodeVariables.names, what: String = "a node variable", strayClose: Bool = true
  ) -> Result<[Part], Problem> {
    var parts: [Part] = []
    var rest = Substring(template)
    while let open = rest.range(of: "{{") {
      if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
      guard let close = rest[open.upperBound...].range(of: "}}") else { return .failure(Problem(why: "'{{' is never closed")) }
      let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
      guard names.contains(name) else {
        return .failure(Problem(why: "{{\(name)}} is not \(what) (they are \(names.map { "{{\($0)}}" }.joined(separator: ", ")))"))
      }
      parts.append(.variable(name))
      rest = rest[close.upperBound...]
    }
    if strayClose && rest.contains("}}") { return .failure(Problem(why: "'}}' closes nothing")) }
    if !rest.isEmpty { parts.append(.text(String(rest))) }
    return .success(parts)
  }

  /// Why `template` is not a valid template, or nil.
  public static func problem(_ template: String) -> String? {
    guard !template.isEmpty else { return "it is empty" }
    if case .failure(let problem) = parse(template) { return problem.why }
    return nil
  }

  /// `template` with the node's values; nil when a variable it uses has no value for this node
  /// (an address not known yet) or it is no template.
  public static func render(_ template: String, _ v: NodeVariables) -> String? {
    guard case .success(let parts) = parse(template) else { return nil }
    var out = ""
    for part in parts {
      switch part {
      case .text(let t): out += t
      case .variable(let name):
        guard let value = v[name], !value.isEmpty else { return nil }
        out += value
      }
    }
    return out
  }
}
