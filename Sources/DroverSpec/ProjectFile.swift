import DroverBasics
import DroverModel
import Foundation
import LibYAML

/// Reads `drover.yaml` into `ProjectSettings`, reporting every problem with its location.
///
/// ```yaml
/// project: web-fleet            # required: names the nodes Drover may change
/// image_dir: /var/lib/drover/images
/// image_pool: drover-images
/// console_dir: /var/lib/drover/console
/// state: {backend: local, dir: /var/lib/drover/state/web-fleet}
/// ```
public enum ProjectFile {
  public static let name = "drover.yaml"

  public static func decode(_ source: SpecSource) -> (ProjectSettings?, [Diagnostic]) {
    var context = DecodeContext(file: source.path)
    guard let root = SpecLoader.document(of: source, context: &context) else { return (nil, context.diagnostics) }
    var file = MappingReader(root, what: "project file", context: &context)
    guard file.isMapping else { return (nil, context.diagnostics) }
    let project = file.required("project", context: &context, hint: "for example: project: web-fleet").flatMap { node -> String? in
      guard let text = context.string(node, "project") else { return nil }
      guard ProjectName.isValid(text) else {
        context.error("spec.project.name", "project must be 1–64 letters, digits, '_' or '-', not '\(text)'", at: node)
        return nil
      }
      return text
    }
    let imageDir = file.optional("image_dir").flatMap { path($0, "image_dir", context: &context) }
    let imagePool = file.optional("image_pool").flatMap { node -> String? in
      guard let text = context.string(node, "image_pool") else { return nil }
      guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
      else {
        context.error("spec.type", "image_pool must be a libvirt storage pool name (letters, digits, '-', '_')", at: node)
        return nil
      }
      return text
    }
    let consoleDir = file.optional("console_dir").flatMap { path($0, "console_dir", context: &context) }
    let state = file.optional("state").map { stateBackend($0, context: &context) } ?? .local(dir: nil)
    let hosts = file.optional("hosts").map { hostEntries($0, context: &context) } ?? []
    let prometheus = file.optional("analysis").flatMap { analysis($0, context: &context) }
    // Every pool's maintenance window unless it names its own (#44).
    let window = file.optional("window").flatMap { WindowDecoder.window($0, context: &context) }
    file.finish(context: &context)
    guard let project else { return (nil, context.diagnostics) }
    var settings = ProjectSettings(
      project: project, imageDir: imageDir, imagePool: imagePool, consoleDir: consoleDir, state: state ?? .local(dir: nil), hosts: hosts)
    settings.prometheus = prometheus
    settings.window = window
    return (settings, context.diagnostics)
  }

  /// `analysis: {prometheus: http://HOST:PORT}`: where analysis gates are queried (#43). Only the
  /// server: no credentials in a committed file.
  static func analysis(_ node: YAMLNode, context: inout DecodeContext) -> String? {
    var r = MappingReader(node, what: "analysis", context: &context)
    guard r.isMapping else { return nil }
    let url = r.required("prometheus", context: &context, hint: "for example: prometheus: http://127.0.0.1:9090").flatMap { n -> String? in
      guard let text = context.string(n, "analysis.prometheus") else { return nil }
      let c = URLComponents(string: text)
      guard let c, ["http", "https"].contains(c.scheme ?? ""), !(c.host ?? "").isEmpty, c.user == nil, c.password == nil, c.query == nil, c.fragment == nil
      else {
        context.error(
          "spec.analysis.url", "analysis.prometheus must be http(s)://HOST[:PORT][/PATH], without credentials or a query", at: n,
          hint: "for example: prometheus: http://127.0.0.1:9090")
        return nil
      }
      return text.hasSuffix("/") ? String(text.dropLast()) : text
    }
    r.finish(context: &context)
    return url
  }

  /// `hosts: [{name, uri, image_dir}]`: the project's hosts, defined once. A URI here carries no
  /// trust material (`spec.uri.unsafe`: keys and known hosts come from the machine's
  /// configuration, keyed by the entry's name).
  static func hostEntries(_ node: YAMLNode, context: inout DecodeContext) -> [HostEntry] {
    guard case .sequence(let items) = node.content else {
      context.error("spec.type", "hosts must be a list of {name, uri, image_dir, max_vcpu_ratio, max_memory_ratio, max_disk_ratio}, not \(node.kindDescription)", at: node)
      return []
    }
    var entries: [HostEntry] = []
    for item in items {
      var reader = MappingReader(item, what: "host entry", context: &context)
      guard reader.isMapping else { continue }
      let nameNode = reader.required("name", context: &context, hint: "for example: name: rack-a")
      let name = nameNode.flatMap { n -> String? in
        guard let text = context.string(n, "name") else { return nil }
        guard MachineConfigFile.isHostName(text) else {
          context.error("spec.name", "host name '\(Terminal.escaped(text))' must be 1–64 letters, digits, '-', '_' or '.'", at: n)
          return nil
        }
        return text
      }
      let uri = reader.required("uri", context: &context, hint: "for example: uri: qemu+libssh://drover@rack-a/system").flatMap {
        context.libvirtURI($0, "uri")
      }
      let imageDir = reader.optional("image_dir").flatMap { n -> String? in
        guard let text = context.string(n, "image_dir") else { return nil }
        if let why = MachineConfigFile.absolutePathProblem(text) {
          context.error("spec.path", "image_dir '\(Terminal.escaped(text))' \(why) (a folder on that host)", at: n)
          return nil
        }
        return HostPathPolicy.normalised(text)
      }
      // Overcommit ratios: what share of the host's CPUs, memory and pool bytes its domains may
      // be given (from 1% to 100x).
      var limits = HostLimits()
      limits.maxVcpuRatio = reader.optional("max_vcpu_ratio").flatMap { context.ratio($0, "max_vcpu_ratio", in: 0.01...100) }
      limits.maxMemoryRatio = reader.optional("max_memory_ratio").flatMap { context.ratio($0, "max_memory_ratio", in: 0.01...100) }
      limits.maxDiskRatio = reader.optional("max_disk_ratio").flatMap { context.ratio($0, "max_disk_ratio", in: 0.01...100) }
      let outage = reader.optional("outage_threshold").flatMap { n -> Double? in
        guard let quantity = context.quantity(n, "outage_threshold", allowZero: false) else { return nil }
        guard case .percent(let p) = quantity else {
          context.error("spec.type", "outage_threshold must be a percentage from 1% to 100%, such as 50%", at: n)
          return nil
        }
        return Double(p) / 100
      }
      reader.finish(context: &context)
      guard let name, let uri, let nameNode else { continue }
      if entries.contains(where: { $0.name == name }) { context.error("spec.duplicate", "host \(name) is defined twice", at: nameNode) }
      if entries.contains(where: { $0.uri == uri }) { context.error("spec.duplicate", "host \(name) has the URI of another entry", at: nameNode) }
      entries.append(HostEntry(name: name, uri: uri, imageDir: imageDir, limits: limits, outageThreshold: outage))
    }
    return entries
  }

  static func stateBackend(_ node: YAMLNode, context: inout DecodeContext) -> ProjectSettings.StateBackend? {
    var state = MappingReader(node, what: "state", context: &context)
    guard state.isMapping else { return nil }
    let backendNode = state.required("backend", context: &context, hint: "backend: local")
    let backend = backendNode.flatMap { context.string($0, "state.backend") }
    var dir: String?
    var url: String?
    var lease: Double?
    if backend == "local" {
      dir = state.optional("dir").flatMap { path($0, "state.dir", context: &context) }
    } else if backend == "postgres" {
      if let u = state.required("url", context: &context, hint: "for example: url: postgres://drover@db.example:5432/drover"), let text = context.string(u, "state.url") {
        let components = URLComponents(string: text)
        if components == nil || !["postgres", "postgresql"].contains(components?.scheme ?? "") || (components?.host ?? "").isEmpty
          || (components?.user ?? "").isEmpty || (components?.path ?? "").count < 2
        {
          context.error("spec.state.url", "state.url must be postgres://USER@HOST[:PORT]/DATABASE", at: u)
        } else if components?.password != nil {
          context.error(
            "spec.state.url", "state.url holds a password, which would be committed with the project", at: u,
            hint: "remove it; Drover reads the password from DROVER_STATE_PASSWORD")
        } else {
          url = text
        }
      }
      if let node = state.optional("lease"), let span = context.timeSpan(node, "state.lease", max: .minutes(10)) {
        if span < .seconds(1) {
          context.error("spec.range", "state.lease must be at least 1s", at: node, hint: "the lease is renewed every third of it")
        } else {
          lease = span.seconds
        }
      }
    } else if let backend, let backendNode {
      context.error("spec.state.backend", "state backend '\(backend)' is not one this Drover knows", at: backendNode, hint: "use backend: local or backend: postgres")
    }
    state.finish(context: &context)
    if backend == "postgres" { return url.map { .postgres(url: $0, lease: lease) } }
    return backend == "local" ? .local(dir: dir) : nil
  }

  /// An absolute path, or one relative to the project root that stays inside it.
  static func path(_ node: YAMLNode, _ field: String, context: inout DecodeContext) -> String? {
    guard let text = context.string(node, field) else { return nil }
    let parts = text.split(separator: "/", omittingEmptySubsequences: true)
    guard !text.isEmpty, !text.contains("\0"), text.utf8.count <= 1024, !parts.contains("..") else {
      context.error("spec.path", "\(field) must be a folder path without '..' components", at: node)
      return nil
    }
    return text
  }
}
