import DroverBasics
import DroverModel
import LibYAML

/// A decoded pool together with where its cross-file fields were written.
public struct LoadedPool: Sendable {
  public var spec: PoolSpec
  public var file: String
  public var nameRange: SourceRange
  public var imageRange: SourceRange
}

enum PoolDecoder {
  static let maxReplicas = 10_000

  /// Decodes one pool document; returns nil when a required field could not be read (the
  /// reasons are in `context`).
  static func decode(_ root: YAMLNode, context: inout DecodeContext) -> LoadedPool? {
    var pool = MappingReader(root, what: "pool", context: &context)
    guard pool.isMapping else { return nil }
    let nameNode = pool.required("name", context: &context)
    let name = nameNode.flatMap { context.name($0, "name") }
    let hosts = pool.required("hosts", context: &context, hint: "for example: hosts: [qemu:///system]")
      .flatMap { hostsList($0, context: &context) }
    let replicas = pool.required("replicas", context: &context).flatMap {
      context.integer($0, "replicas", in: 0...maxReplicas, hint: "replicas counts nodes; use 0 to keep the pool empty")
    }
    let imageNode = pool.required("image", context: &context, hint: "for example: image: demo@v1")
    let image = imageNode.flatMap { imageRef($0, context: &context) }
    let resources = pool.optional("resources").map { decodeResources($0, context: &context) } ?? Resources()
    let network = pool.optional("network").flatMap { node -> String? in
      guard let n = context.string(node, "network") else { return nil }
      return n == "none" ? nil : n
    }
    let labels = pool.optional("labels").map { decodeLabels($0, context: &context) } ?? [:]
    let healthNode = pool.optional("health")
    let health = healthNode.map { HealthDecoder.decodeList($0, context: &context) } ?? []
    if let healthNode, network == nil, health.contains(where: { if case .ssh = $0.kind { true } else { false } }) {
      context.error(
        "spec.health.ssh", "an ssh health check needs the pool's nodes on a network, and this pool has none", at: healthNode,
        hint: "add network: default (or another libvirt network), or check on the console instead")
    }
    let drain = pool.optional("drain").map { DrainDecoder.decode($0, context: &context) } ?? DrainSpec()
    let upgrade = pool.optional("upgrade").map { UpgradeDecoder.decode($0, context: &context) } ?? UpgradeStrategy()
    let (budget, burnRate) = pool.optional("error_budget").map { WindowDecoder.errorBudget($0, context: &context) } ?? (.count(0), nil)
    let window = pool.optional("window").flatMap { WindowDecoder.window($0, context: &context) }
    let protect = pool.optional("protect").flatMap { context.boolean($0, "protect") } ?? false
    let accel = pool.optional("accel").flatMap { node -> Accel? in
      guard context.string(node, "accel") != "auto" else { return nil }
      return enumValue(node, "accel", Accel.self, &context)
    }
    let sshKeys = pool.optional("access").map { decodeAccess($0, context: &context) } ?? []
    let userData = pool.optional("cloud_init").flatMap { decodeCloudInit($0, context: &context) }
    var staticAddresses: StaticAddresses?
    if let node = pool.optional("static_addresses") {
      staticAddresses = decodeStaticAddresses(node, replicas: replicas ?? 0, context: &context)
      if network == nil {
        context.error(
          "spec.addresses", "static_addresses needs the pool's nodes on a network, and this pool has none", at: node,
          hint: "add network: default (or the libvirt network the addresses belong to)")
      }
    }
    let heartbeatNode = pool.optional("heartbeat")
    let heartbeat = heartbeatNode.flatMap { RemediationDecoder.heartbeat($0, context: &context) }
    if let heartbeatNode, case .ssh = heartbeat?.source, network == nil {
      context.error(
        "spec.heartbeat.ssh", "an ssh heartbeat needs the pool's nodes on a network, and this pool has none", at: heartbeatNode,
        hint: "add network: default, or beat on the console instead (source: console)")
    }
    let remediation = pool.optional("remediation").flatMap { RemediationDecoder.remediation($0, context: &context) }
    let keptCapacity = pool.optional("capacity").flatMap { enumValue($0, "capacity", KeptCapacity.self, &context) } ?? .reserve
    pool.finish(context: &context)

    guard let name, let hosts, let replicas, let image, let nameNode, let imageNode else { return nil }
    var spec = PoolSpec(
      name: name, hosts: hosts, replicas: replicas, image: image, resources: resources, network: network,
      labels: labels, health: health, drain: drain, upgrade: upgrade, errorBudget: budget, protect: protect)
    spec.accel = accel
    spec.sshKeys = sshKeys
    spec.userData = userData
    spec.staticAddresses = staticAddresses
    spec.heartbeat = heartbeat
    spec.remediation = remediation
    spec.burnRate = burnRate
    spec.window = window
    spec.keptCapacity = keptCapacity
    return LoadedPool(spec: spec, file: context.file, nameRange: context.range(nameNode), imageRange: context.range(imageNode))
  }

  /// `access: {ssh_keys: [...]}`: OpenSSH public keys, one line each (they go into the seed).
  static func decodeAccess(_ node: YAMLNode, context: inout DecodeContext) -> [String] {
    var reader = MappingReader(node, what: "access", context: &context)
    guard reader.isMapping else { return [] }
    var keys: [String] = []
    if let list = reader.optional("ssh_keys") {
      if case .sequence(let items) = list.content {
        for item in items {
          guard let key = context.string(item, "ssh_keys") else { continue }
          if CloudInitSeed.isPublicKey(key) { keys.append(key) } else {
            context.error(
              "spec.access.key", "ssh_keys entries must be OpenSSH public keys on one line (ssh-ed25519 AAAA… comment)", at: item,
              hint: "the contents of a .pub file")
          }
        }
      } else {
        context.error("spec.type", "ssh_keys must be a list, not \(list.kindDescription)", at: list)
      }
    }
    reader.finish(context: &context)
    return keys
  }

  /// `static_addresses: {first: 192.168.122.100/24, gateway: 192.168.122.1, dns: [192.168.122.1]}`.
  static func decodeStaticAddresses(_ node: YAMLNode, replicas: Int, context: inout DecodeContext) -> StaticAddresses? {
    var reader = MappingReader(node, what: "static_addresses", context: &context)
    guard reader.isMapping else { return nil }
    var result: StaticAddresses?
    if let f = reader.required("first", context: &context, hint: "the first node's address and the network's prefix, for example 192.168.122.100/24"),
      let text = context.string(f, "first")
    {
      let parts = text.split(separator: "/", omittingEmptySubsequences: false)
      if parts.count == 2, let first = StaticAddresses.parse(String(parts[0])), let prefix = Int(parts[1]), (8...30).contains(prefix) {
        let hostMask = ~UInt32(0) >> UInt32(prefix)
        if first & hostMask == 0 {
          context.error("spec.addresses", "\(text) is the network's own address, not a node's", at: f)
        } else if let why = StaticAddresses.specialUse(first) {
          context.error("spec.addresses", "\(parts[0]) \(why): no node can have it", at: f)
        } else {
          result = StaticAddresses(first: first, prefix: prefix)
          if result?.fits(replicas: replicas) == false {
            context.error(
              "spec.addresses", "\(replicas) nodes need \(2 * replicas) addresses from \(parts[0]) (two per node, so a replacement never shares its node's), and /\(prefix) has not that many",
              at: f, hint: "start lower, or use a larger network")
            result = nil
          }
        }
      } else {
        context.error("spec.addresses", "first must be an IPv4 address with a prefix length 8-30, such as 192.168.122.100/24, not '\(text)'", at: f)
      }
    }
    func address(_ n: YAMLNode, _ what: String) -> UInt32? {
      guard let text = context.string(n, what) else { return nil }
      guard let value = StaticAddresses.parse(text) else {
        context.error("spec.addresses", "\(what) must be an IPv4 address such as 192.168.122.1, not '\(text)'", at: n)
        return nil
      }
      if let why = StaticAddresses.specialUse(value) {
        context.error("spec.addresses", "\(what) \(text) \(why)", at: n)
        return nil
      }
      return value
    }
    if let g = reader.optional("gateway"), let gateway = address(g, "gateway"), var r = result {
      let nodes = UInt64(r.first)..<UInt64(r.first) + UInt64(2 * max(replicas, 1))
      let mask = ~UInt32(0) << UInt32(32 - r.prefix)
      if nodes.contains(UInt64(gateway)) {
        context.error("spec.addresses", "gateway \(StaticAddresses.text(gateway)) is one of the nodes' addresses", at: g)
      } else if gateway & mask != r.first & mask {
        context.error(
          "spec.addresses", "gateway \(StaticAddresses.text(gateway)) is outside the nodes' network \(StaticAddresses.text(r.first & mask))/\(r.prefix)", at: g,
          hint: "the gateway is an address the nodes reach directly, such as the libvirt network's own")
      }
      r.gateway = gateway
      result = r
    }
    if let d = reader.optional("dns") {
      if case .sequence(let items) = d.content {
        let servers = items.compactMap { address($0, "dns") }
        result?.dns = servers
      } else {
        context.error("spec.type", "dns must be a list of addresses, not \(d.kindDescription)", at: d)
      }
    }
    reader.finish(context: &context)
    return result
  }

  /// The cloud-config keys that would let a pool's user-data override how nodes make and show
  /// their host keys (merged after Drover's part, its values win): given keys shared by every
  /// node, the image's baked keys kept, or keys hidden from the console.
  static let hostKeyKeys: Set<String> = [
    "ssh_keys", "ssh_deletekeys", "ssh_genkeytypes", "emit_keys_to_console", "ssh_key_console_blacklist", "no_ssh_fingerprints", "ssh", "<<",
  ]

  /// The first such key at the top of `text`'s mapping, if any (text that is not YAML is left to cloud-init).
  static func hostKeySetting(_ text: String) -> String? {
    guard let documents = try? YAMLParser.parseDocuments(Array(text.utf8)) else { return nil }
    for document in documents {
      guard case .mapping(let pairs) = document.content else { continue }
      if let key = pairs.compactMap({ $0.key.scalar }).first(where: hostKeyKeys.contains) { return key }
    }
    return nil
  }

  /// `cloud_init: {user_data: |\n  #cloud-config …}`: a document cloud-init merges after Drover's.
  static func decodeCloudInit(_ node: YAMLNode, context: inout DecodeContext) -> String? {
    var reader = MappingReader(node, what: "cloud_init", context: &context)
    guard reader.isMapping else { return nil }
    var result: String?
    if let n = reader.optional("user_data"), let text = context.string(n, "user_data") {
      if !text.hasPrefix("#cloud-config\n") {
        context.error("spec.cloud-init", "user_data must be a #cloud-config document (its first line is #cloud-config)", at: n)
      } else if text.utf8.count > CloudInitSeed.maximumUserData {
        context.error("spec.cloud-init", "user_data is larger than \(CloudInitSeed.maximumUserData / 1024) KiB", at: n)
      } else if hostKeySetting(text) == "<<" {
        context.error(
          "spec.cloud-init", "user_data merges a mapping into its top level (<<), so Drover cannot tell whether it decides the nodes' SSH host keys",
          at: n, hint: "write the keys out instead of merging them")
      } else if let key = hostKeySetting(text) {
        context.error(
          "spec.cloud-init", "user_data sets '\(key)', which decides the nodes' SSH host keys: Drover's part sets them (each node makes its own and prints them on its console, where Drover pins them)",
          at: n, hint: "remove '\(key)'; a node's host keys are never given, shared or hidden")
      } else {
        result = text
      }
    }
    reader.finish(context: &context)
    return result
  }

  static func hostsList(_ node: YAMLNode, context: inout DecodeContext) -> [String]? {
    let items: [YAMLNode]
    switch node.content {
    case .sequence(let list): items = list
    case .scalar: items = [node]
    case .mapping:
      context.error("spec.type", "hosts must be a list of libvirt URIs, not a mapping", at: node)
      return nil
    }
    guard !items.isEmpty else {
      context.error("spec.range", "hosts must name at least one libvirt URI", at: node)
      return nil
    }
    var hosts: [String] = []
    var ok = true
    for item in items {
      guard let uri = context.libvirtURI(item, "host") else {
        ok = false
        continue
      }
      if hosts.contains(uri) {
        context.error("spec.duplicate", "host '\(uri)' is listed twice", at: item)
        ok = false
      }
      hosts.append(uri)
    }
    return ok ? hosts : nil
  }

  static func imageRef(_ node: YAMLNode, context: inout DecodeContext) -> ImageRef? {
    guard let text = context.string(node, "image") else { return nil }
    guard let ref = ImageRef(parsing: text) else {
      context.error(
        "spec.image.reference", "image '\(text)' must be name@version or name@sha256:<digest>", at: node,
        hint: "for example: demo@v1")
      return nil
    }
    return ref
  }

  static func decodeResources(_ node: YAMLNode, context: inout DecodeContext) -> Resources {
    var reader = MappingReader(node, what: "resources", context: &context)
    var resources = Resources()
    if let n = reader.optional("vcpu"), let v = context.integer(n, "vcpu", in: 1...256) { resources.vcpu = v }
    if let n = reader.optional("memory"),
      let v = context.byteSize(n, "memory", min: .mebibytes(16), max: .mebibytes(4 << 20))
    {
      resources.memory = v
    }
    if let n = reader.optional("disk"),
      let v = context.byteSize(n, "disk", min: .mebibytes(1), max: .mebibytes(64 << 20))
    {
      resources.disk = v
    }
    reader.finish(context: &context)
    return resources
  }

  static func decodeLabels(_ node: YAMLNode, context: inout DecodeContext) -> [String: String] {
    var reader = MappingReader(node, what: "labels", context: &context)
    guard case .mapping(let pairs) = node.content else { return [:] }
    var labels: [String: String] = [:]
    for pair in pairs {
      guard let key = pair.key.scalar else { continue }
      _ = reader.optional(key)
      let keyOK = !key.isEmpty && key.count <= 63
        && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }
      if !keyOK {
        context.error(
          "spec.label", "label key '\(Terminal.escaped(key))' must be 1–63 letters, digits, '-', '_', '.' or '/'", at: pair.key)
        continue
      }
      guard let value = pair.value.scalar, !pair.value.isNull || pair.value.style != .plain else {
        context.error("spec.type", "label '\(key)' must have a string value, not \(pair.value.kindDescription)", at: pair.value)
        continue
      }
      if Terminal.hasControlCharacters(value) {
        context.error(
          "spec.label", "label '\(key)' has control characters in its value ('\(Terminal.escaped(value))')", at: pair.value,
          hint: "labels are shown in terminals and written to hosts: plain text only")
        continue
      }
      if value.unicodeScalars.count > 256 {
        context.error("spec.range", "label '\(key)' is longer than 256 characters", at: pair.value)
        continue
      }
      labels[key] = value
    }
    reader.finish(context: &context)
    return labels
  }
}
