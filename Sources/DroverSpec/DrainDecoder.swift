import DroverBasics
import DroverModel
import LibYAML

/// Decodes `drain:`, how a node leaves service before replacement.
enum DrainDecoder {
  static let types = ["none", "kubernetes", "slurm", "command"]

  static func decode(_ node: YAMLNode, context: inout DecodeContext) -> DrainSpec {
    var reader = MappingReader(node, what: "drain", context: &context)
    var spec = DrainSpec()
    guard reader.isMapping else { return spec }
    let type = reader.optional("type").flatMap { n -> (String, YAMLNode)? in context.string(n, "type").map { ($0, n) } }
    switch type?.0 ?? "none" {
    case "none": spec.backend = .none
    case "kubernetes":
      let kubeconfig = reader.optional("kubeconfig").flatMap { context.hostPath($0, "kubeconfig", trust: true) }
      let grace = reader.optional("grace_period").flatMap { context.timeSpan($0, "grace_period") } ?? .seconds(30)
      let kubectl = reader.optional("kubectl").flatMap { node -> String? in
        guard let text = context.string(node, "kubectl") else { return nil }
        // A program Drover runs as its own user: a plain path or name, never options or a shell line.
        guard !text.isEmpty, text.utf8.count <= 1024, !text.hasPrefix("-"), !text.contains("\0"),
          !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " })
        else {
          context.error("spec.drain.kubectl", "drain.kubectl must be the path or name of the kubectl binary", at: node, hint: "for example: /usr/local/bin/kubectl")
          return nil
        }
        return text
      }
      spec.backend = .kubernetes(kubeconfig: kubeconfig, gracePeriod: grace, kubectl: kubectl, nodeName: nodeName(&reader, &context))
    case "slurm":
      spec.backend = .slurm(nodeName: nodeName(&reader, &context))
    case "command":
      let cordon = reader.optional("cordon").flatMap { HealthDecoder.argvList($0, context: &context) }
      let drain = reader.optional("drain").flatMap { HealthDecoder.argvList($0, context: &context) }
      let uncordon = reader.optional("uncordon").flatMap { HealthDecoder.argvList($0, context: &context) }
      if cordon == nil && drain == nil && uncordon == nil {
        context.error(
          "spec.missing-key", "drain type 'command' needs at least one of cordon, drain, uncordon", at: node)
      }
      spec.backend = .command(cordon: cordon, drain: drain, uncordon: uncordon)
    case let other:
      context.error(
        "spec.drain.type", "unknown drain type '\(other)'", at: type!.1,
        hint: nearest(other, in: types).map { "did you mean '\($0)'?" } ?? "one of: \(types.joined(separator: ", "))")
    }
    if let n = reader.optional("timeout"), let v = context.timeSpan(n, "timeout") { spec.timeout = v }
    if let n = reader.optional("on_timeout"), let v = enumValue(n, "on_timeout", DrainSpec.OnTimeout.self, &context) {
      spec.onTimeout = v
    }
    if let n = reader.optional("on_failure"), let v = enumValue(n, "on_failure", DrainSpec.OnFailure.self, &context) {
      spec.onFailure = v
    }
    reader.finish(context: &context)
    return spec
  }
}

/// `node_name`: the scheduler's name for a node, a template over the node variables (#42).
func nodeName(_ reader: inout MappingReader, _ context: inout DecodeContext) -> String? {
  guard let node = reader.optional("node_name"), let text = context.string(node, "node_name") else { return nil }
  if let why = NodeTemplate.problem(text) {
    context.error("spec.drain.node-name", "drain.node_name '\(Terminal.printable(String(text.prefix(80))))' is not a node name template: \(why)", at: node,
      hint: "for example: node_name: \"{{hostname}}\" (the default) or \"{{pool}}-{{node}}\"")
    return nil
  }
  return text
}

/// Reads one of a closed set of words, suggesting the nearest on a typo.
func enumValue<E: RawRepresentable & CaseIterable>(
  _ node: YAMLNode, _ field: String, _ type: E.Type, _ context: inout DecodeContext
) -> E? where E.RawValue == String {
  guard let text = context.string(node, field) else { return nil }
  if let value = E(rawValue: text) { return value }
  let words = E.allCases.map(\.rawValue)
  context.error(
    "spec.type", "\(field) must be one of: \(words.joined(separator: ", "))", at: node,
    hint: nearest(text, in: words).map { "did you mean '\($0)'?" })
  return nil
}

extension DrainSpec.OnTimeout: CaseIterable {
  public static let allCases: [Self] = [.fail, .force]
}
extension DrainSpec.OnFailure: CaseIterable {
  public static let allCases: [Self] = [.uncordon, .leaveCordoned]
}
extension UpgradeStrategy.OnBudgetExceeded: CaseIterable {
  public static let allCases: [Self] = [.rollback, .pause]
}
extension ImageRecipe.Compression: CaseIterable {
  public static let allCases: [Self] = [.none, .zstd]
}
