import DroverBasics
import DroverModel
import LibYAML

/// Reads the machine's configuration (`/etc/drover/config.yaml`) into `MachineSettings`.
///
/// ```yaml
/// allow_paths: [/boot, /srv/drover/kernels]   # host files specs may name, beyond the project
/// kernel: /boot/vmlinuz-6.1.0-18-amd64        # for recipes that name none (default /vmlinuz)
/// hosts:                                       # named entries pool files may list in hosts:
///   lab: qemu+ssh://drover@lab.example/system?keyfile=/etc/drover/id_ed25519&known_hosts=/etc/drover/known_hosts
/// state:                                       # state databases, by the host:port state.url names
///   db.example:5432: {ca: /etc/drover/db-ca.pem, password_file: /etc/drover/db-password}
/// ```
///
/// Written by the machine's administrator, never by a project: it is the only place a host URI
/// may carry keys, known hosts or commands, and the only place that widens which host files a
/// spec may name.
public enum MachineConfigFile {
  public static func decode(_ source: SpecSource) -> (MachineSettings, [Diagnostic]) {
    var settings = MachineSettings(file: source.path)
    var context = DecodeContext(file: source.path)
    guard let root = SpecLoader.document(of: source, context: &context) else { return (settings, context.diagnostics) }
    var file = MappingReader(root, what: "machine configuration", context: &context)
    guard file.isMapping else { return (settings, context.diagnostics) }
    if let node = file.optional("allow_paths"), let list = context.stringList(node, "allow_paths") {
      for path in list {
        if let why = absolutePathProblem(path) {
          context.error("machine.path", "allow_paths entry '\(Terminal.escaped(path))' \(why)", at: node)
        } else if HostPathPolicy.normalised(path) == "/" {
          context.error("machine.path", "allow_paths must not allow '/': it would let a spec read any file", at: node, hint: "name the folders, such as /boot")
        } else {
          settings.allowedRoots.append(HostPathPolicy.normalised(path))
        }
      }
    }
    if let node = file.optional("kernel"), let path = context.string(node, "kernel") {
      if let why = absolutePathProblem(path) {
        context.error("machine.path", "kernel '\(Terminal.escaped(path))' \(why)", at: node)
      } else {
        settings.kernel = path
      }
    }
    if let node = file.optional("hosts") {
      if case .mapping(let pairs) = node.content {
        for pair in pairs {
          guard let name = context.string(pair.key, "host name") else { continue }
          guard isHostName(name) else {
            context.error("machine.host", "host name '\(Terminal.escaped(name))' must be 1–64 letters, digits, '-', '_' or '.'", at: pair.key)
            continue
          }
          guard let host = machineHost(name, pair.value, context: &context) else { continue }
          if settings.hosts[name] != nil { context.error("spec.duplicate", "host \(name) is named twice", at: pair.key) }
          settings.hosts[name] = host
        }
      } else {
        context.error("spec.type", "hosts must be a mapping of names to libvirt URIs, not \(node.kindDescription)", at: node)
      }
    }
    if let node = file.optional("state") {
      if case .mapping(let pairs) = node.content {
        for pair in pairs {
          guard let server = context.string(pair.key, "state server") else { continue }
          guard isServerAddress(server) else {
            context.error("machine.state", "state server '\(Terminal.escaped(server))' must be written host:port, as state.url names it", at: pair.key)
            continue
          }
          guard let entry = stateServer(server, pair.value, context: &context) else { continue }
          if settings.stateServers[server] != nil { context.error("spec.duplicate", "state server \(server) is named twice", at: pair.key) }
          settings.stateServers[server] = entry
        }
      } else {
        context.error("spec.type", "state must be a mapping of host:port to {ca, password_file, insecure}, not \(node.kindDescription)", at: node)
      }
    }
    if let node = file.optional("metrics") {
      if case .mapping(let pairs) = node.content {
        for pair in pairs {
          guard let server = context.string(pair.key, "metrics server") else { continue }
          guard isServerAddress(server) else {
            context.error("machine.metrics", "metrics server '\(Terminal.escaped(server))' must be written host:port, as analysis.prometheus names it", at: pair.key)
            continue
          }
          var reader = MappingReader(pair.value, what: "metrics server \(server)", context: &context)
          guard reader.isMapping else { continue }
          if let n = reader.required("ca", context: &context, hint: "ca: /etc/drover/prometheus-ca.pem"), let ca = context.string(n, "ca") {
            if let why = absolutePathProblem(ca) {
              context.error("machine.path", "metrics server \(server): ca '\(Terminal.escaped(ca))' \(why)", at: n)
            } else {
              if settings.metricsServers[server] != nil { context.error("spec.duplicate", "metrics server \(server) is named twice", at: pair.key) }
              settings.metricsServers[server] = ca
            }
          }
          reader.finish(context: &context)
        }
      } else {
        context.error("spec.type", "metrics must be a mapping of host:port to {ca}, not \(node.kindDescription)", at: node)
      }
    }
    file.finish(context: &context)
    return (settings, context.diagnostics)
  }

  /// `host:port` of a state database (a name or an IPv4 address; an IPv6 one in brackets).
  static func isServerAddress(_ text: String) -> Bool {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return false }
    let host = text[..<colon]
    return (1...253).contains(host.count) && !Terminal.hasControlCharacters(String(host)) && !host.contains("/") && !host.contains(" ")
  }

  /// `{ca, password_file, insecure}` of one state server.
  static func stateServer(_ server: String, _ node: YAMLNode, context: inout DecodeContext) -> MachineStateServer? {
    var reader = MappingReader(node, what: "state server \(server)", context: &context)
    guard reader.isMapping else { return nil }
    var entry = MachineStateServer()
    for key in ["ca", "password_file"] {
      guard let n = reader.optional(key), let value = context.string(n, key) else { continue }
      if let why = absolutePathProblem(value) {
        context.error("machine.path", "state server \(server): \(key) '\(Terminal.escaped(value))' \(why)", at: n)
        continue
      }
      if key == "ca" { entry.ca = value } else { entry.passwordFile = value }
    }
    if let n = reader.optional("insecure") { entry.insecure = context.boolean(n, "insecure") ?? false }
    if entry.insecure, entry.ca != nil {
      context.error("machine.state", "state server \(server) names a CA and insecure: true; choose one", at: node, hint: "drop insecure: the CA verifies the server")
    }
    reader.finish(context: &context)
    return entry
  }

  /// The trust parameters a machine host entry may give, as libvirt names them.
  static let trustKeys = ["keyfile", "known_hosts", "pkipath", "known_hosts_verify", "sshauth"]

  /// `name: URI` (the whole URI, parameters and all), or a mapping of `uri`, trust material
  /// (`keyfile`, `known_hosts`, `pkipath`, …) and `insecure`.
  static func machineHost(_ name: String, _ node: YAMLNode, context: inout DecodeContext) -> MachineHost? {
    if case .scalar = node.content {
      guard let uri = context.string(node, "host URI") else { return nil }
      guard SpecUnits.isLibvirtURI(uri) else {
        context.error("machine.host", "host \(name): '\(Terminal.escaped(uri))' is not a libvirt URI", at: node)
        return nil
      }
      return MachineHost(uri: uri)
    }
    var reader = MappingReader(node, what: "host \(name)", context: &context)
    guard reader.isMapping else { return nil }
    var host = MachineHost()
    if let n = reader.optional("uri"), let uri = context.string(n, "uri") {
      if SpecUnits.isLibvirtURI(uri) { host.uri = uri } else {
        context.error("machine.host", "host \(name): '\(Terminal.escaped(uri))' is not a libvirt URI", at: n)
      }
    }
    for key in trustKeys {
      guard let n = reader.optional(key), let value = context.string(n, key) else { continue }
      if key != "sshauth" && key != "known_hosts_verify", let why = absolutePathProblem(value) {
        context.error("machine.path", "host \(name): \(key) '\(Terminal.escaped(value))' \(why)", at: n)
        continue
      }
      host.parameters[key] = value
    }
    if let n = reader.optional("insecure") { host.insecure = context.boolean(n, "insecure") ?? false }
    reader.finish(context: &context)
    return host
  }

  /// A host entry's name: what pool files write instead of a URI.
  public static func isHostName(_ text: String) -> Bool {
    (1...64).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
      && text != "." && text != ".."
  }

  /// Why `path` is not a normalised absolute path, or nil.
  public static func absolutePathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return "must be an absolute path" }
    if path.split(separator: "/").contains("..") { return "must not contain '..'" }
    if Terminal.hasControlCharacters(path) { return "must not contain control characters" }
    return nil
  }
}
