import DroverBasics
import DroverModel

/// The `<drover:node>` metadata element: Drover's ownership mark on a domain.
///
/// Lives in its own XML namespace so it never collides with other tools' metadata; libvirt
/// stores it verbatim (re-serialised) and returns it from `virDomainGetMetadata`.
public enum OwnershipMetadata {
  public static let namespace = "https://drover.dev/xmlns/node/1"
  public static let prefix = "drover"
  /// Bumped when the element's shape changes; older shapes stay readable. Format 2 is keyed.
  static let formatVersion = "2"

  /// What a keyed seal binds a record to besides its content: the domain's UUID and the host
  /// entry (the URI as the pool file names it) it was written through. The domain's name is the
  /// record's own `name`.
  public struct Binding: Sendable, Hashable {
    public var uuid: String
    public var host: String
    public init(uuid: String, host: String) {
      self.uuid = uuid.lowercased()
      self.host = host
    }
  }

  /// The element as Drover writes it (every value escaped), sealed with the project key over its
  /// content and its binding.
  ///
  /// `forSetMetadata` leaves out the prefix and namespace declaration: `virDomainSetMetadata`
  /// adds them itself from its key and URI and fails if the element already declares them.
  public static func render(_ o: NodeOwnership, key: RecordKey, binding: Binding, forSetMetadata: Bool = false) -> String {
    var attrs = attributes(o, format: formatVersion)
    attrs += [("uuid", binding.uuid), ("host", binding.host), ("key", key.id)]
    attrs.append(("seal", key.mac(canonical(attrs, labels: o.labels))))
    return element(attrs, labels: o.labels, forSetMetadata: forSetMetadata)
  }

  /// A record as Drover wrote it before records were keyed (format 1, an unkeyed digest anyone
  /// can recompute). Drover never writes these any more; kept so tests can build the records an
  /// older Drover left on the hosts, and prove they are never trusted on their own.
  public static func renderLegacy(_ o: NodeOwnership, forSetMetadata: Bool = false) -> String {
    var attrs = attributes(o, format: "1")
    attrs.append(("seal", legacySeal(attrs, labels: o.labels)))
    return element(attrs, labels: o.labels, forSetMetadata: forSetMetadata)
  }

  static func attributes(_ o: NodeOwnership, format: String) -> [(String, String)] {
    var attrs: [(String, String)] = [
      ("format", format), ("project", o.project), ("pool", o.pool), ("name", o.node), ("index", String(o.index)), ("image", o.image),
      ("digest", o.digest), ("spec", o.specHash), ("generation", String(o.generation)), ("vcpu", String(o.vcpu)),
      ("memory_mib", String(o.memoryMiB)), ("disk_mib", String(o.diskMiB)), ("protect", o.protect ? "true" : "false"),
    ]
    attrs.append(("replicas", String(o.replicas)))
    if !o.disk.isEmpty { attrs.append(("disk", o.disk)) }
    if let network = o.network { attrs.append(("network", network)) }
    if o.healthFailed { attrs.append(("health", "failed")) }
    if !o.hooks.isEmpty { attrs.append(("hooks", o.hooks)) }
    if let address = o.address { attrs.append(("address", address)) }
    if let seed = o.seed { attrs.append(("seed", seed)) }
    if let kept = o.kept {
      attrs += [("role", "kept"), ("kept_by", kept.rollout), ("kept_until", String(Int64(kept.until.rounded(.up))))]
      if !kept.reserves { attrs.append(("kept_capacity", "disk-only")) }
      if let state = kept.state, state != .stopped { attrs.append(("kept_state", state.rawValue)) }
    }
    if let mark = o.rollout {
      attrs += [
        ("rollout", mark.id), ("rollout_phase", mark.phase), ("rollout_from", mark.fromImage), ("rollout_to", mark.toImage),
        ("rollout_by", mark.by), ("rollout_total", String(mark.total)),
      ]
    }
    return attrs
  }

  static func element(_ attrs: [(String, String)], labels: [String: String], forSetMetadata: Bool) -> String {
    let p = forSetMetadata ? "" : prefix + ":"
    var xml = forSetMetadata ? "<node" : "<\(p)node xmlns:\(prefix)=\"\(namespace)\""
    for (k, v) in attrs { xml += " \(k)=\"\(XMLText.attribute(v))\"" }
    if labels.isEmpty { return xml + "/>" }
    xml += ">"
    for key in labels.keys.sorted() {
      xml += "<\(p)label key=\"\(XMLText.attribute(key))\" value=\"\(XMLText.attribute(labels[key] ?? ""))\"/>"
    }
    return xml + "</\(p)node>"
  }

  /// The bytes a keyed seal covers: every attribute but the seal, sorted by key, then every label
  /// sorted by key, each key and value length-prefixed (`<bytes>:<text>`), so no value can ever
  /// be read as another split of the same bytes (a newline or `=` inside a value is just data).
  /// Built in one buffer: `plan` checks one seal per domain, so this is on the hot path.
  static func canonical(_ attrs: [(String, String)], labels: [String: String]) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(768)
    func field(_ text: String) {
      bytes.append(contentsOf: String(text.utf8.count).utf8)
      bytes.append(UInt8(ascii: ":"))
      bytes.append(contentsOf: text.utf8)
    }
    bytes.append(UInt8(ascii: "A"))
    for (k, v) in attrs.sorted(by: { $0.0 < $1.0 }) where k != "seal" {
      field(k)
      field(v)
    }
    bytes.append(UInt8(ascii: "L"))
    for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
      field(k)
      field(v)
    }
    return bytes
  }

  /// Format 1's canonical text (`key=value` lines, then `label key=value` lines): ambiguous, which
  /// is one more reason a format-1 record is never trusted on its own.
  static func legacyCanonical(_ attrs: [(String, String)], labels: [String: String]) -> [UInt8] {
    var bytes: [UInt8] = []
    var first = true
    for (k, v) in attrs.sorted(by: { $0.0 < $1.0 }) where k != "seal" {
      if !first { bytes.append(0x0A) }
      first = false
      bytes.append(contentsOf: "\(k)=\(v)".utf8)
    }
    bytes.append(0x0A)
    first = true
    for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
      if !first { bytes.append(0x0A) }
      first = false
      bytes.append(contentsOf: "label \(k)=\(v)".utf8)
    }
    return bytes
  }

  /// Format 1's seal: 16 hex digits of an unkeyed SHA-256 (detects a careless edit, proves nothing).
  static func legacySeal(_ attrs: [(String, String)], labels: [String: String]) -> String {
    String(ContentDigest.of(legacyCanonical(attrs, labels: labels)).hex.prefix(16))
  }

  /// What one read of a domain's metadata element says: who owns it, whether it can be trusted,
  /// and a digest that changes whenever the element does (for saved-plan fingerprints).
  public struct Reading: Sendable {
    public var ownership: NodeOwnership?
    public var trust: RecordTrust
    public var digest: String
  }

  /// Reads the element of the domain `name` (UUID `uuid`) seen through host entry `host`, and
  /// checks it: its name, then for a keyed record its binding and its MAC under `key` (nil: no key
  /// on this machine, so the seal cannot be checked). One scan: `plan` does this once per domain.
  public static func read(_ xml: String, name: String, uuid: String, host: String, key: RecordKey?) -> Reading {
    read(xml, tags: XMLText.startTags(xml), name: name, uuid: uuid, host: host, key: key)
  }

  /// The same from the element's start tags, parsed already (`DomainXMLReader.ownership`).
  static func read(_ xml: String, tags: [XMLTag], name: String, uuid: String, host: String, key: RecordKey?) -> Reading {
    let ownership = parse(tags)
    guard let root = tags.first, let o = ownership else {
      return Reading(ownership: nil, trust: .mismatch("not a Drover record"), digest: ContentDigest.of(xml).hex)
    }
    let trust = check(root, labels: labels(tags), record: o, name: name, uuid: uuid, host: host, key: key)
    let digest = trust == .verified ? "seal:" + (root["seal"] ?? "") : ContentDigest.of(xml).hex
    return Reading(ownership: o, trust: trust, digest: digest)
  }

  /// UUIDs compared ignoring ASCII case, on the bytes (`lowercased()` is Unicode-aware and was
  /// a visible part of reading 1,000 records).
  static func sameUUID(_ a: String, _ b: String) -> Bool {
    a.utf8.count == b.utf8.count
      && zip(a.utf8, b.utf8).allSatisfy { x, y in x == y || ((x | 0x20) == (y | 0x20) && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A) }
  }

  static func check(_ root: XMLTag, labels: [String: String], record o: NodeOwnership, name: String, uuid: String, host: String, key: RecordKey?)
    -> RecordTrust
  {
    if o.node != name {
      return .mismatch("its record is node \(o.node)'s, not this domain's: it looks like a copy of \(o.node)")
    }
    let attrs = sealedAttributes(root)
    guard let keyID = root["key"] else {
      // Format 1, from before keyed records.
      guard let stored = root["seal"] else { return .legacy }
      return legacySeal(attrs, labels: labels) == stored ? .legacy : .mismatch("its record was edited by hand (its seal does not match)")
    }
    if !Self.sameUUID(root["uuid"] ?? "", uuid) {
      return .mismatch("its record is bound to UUID \(root["uuid"] ?? "none"), not this domain's \(uuid): it looks like a copy of \(o.node) (a clone, or dumpxml and define)")
    }
    if root["host"] != host {
      return .mismatch("its record was written for \(o.node) on \(root["host"] ?? "no host"), not on \(host): it looks like a copy")
    }
    guard let key else { return .unchecked(keyID: keyID) }
    guard keyID == key.id else {
      return .mismatch("its record is sealed with key \(keyID), not project \(key.project)'s key \(key.id)")
    }
    guard let stored = root["seal"], key.verifies(canonical(attrs, labels: labels), mac: stored) else {
      return .mismatch("its seal does not verify under the project key: the record was edited or forged")
    }
    return .verified
  }

  /// Parses the element back; nil when it is not a well-formed Drover node record (treated as foreign).
  public static func parse(_ xml: String) -> NodeOwnership? { parse(XMLText.startTags(xml)) }

  static func sealedAttributes(_ root: XMLTag) -> [(String, String)] {
    root.attributes.filter { !$0.key.hasPrefix("xmlns") }.map { ($0.key, $0.value) }
  }

  static func labels(_ tags: [XMLTag]) -> [String: String] {
    var labels: [String: String] = [:]
    for tag in tags.dropFirst() where tag.name.hasSuffix(":label") || tag.name == "label" {
      if let k = tag["key"], let v = tag["value"] { labels[k] = v }
    }
    return labels
  }

  static func parse(_ tags: [XMLTag]) -> NodeOwnership? {
    guard let root = tags.first, root.name.hasSuffix(":node") || root.name == "node" else { return nil }
    let a = root
    guard let pool = a["pool"], let name = a["name"], let index = a["index"].flatMap(Int.init), let image = a["image"],
      let generation = a["generation"].flatMap(Int.init), let vcpu = a["vcpu"].flatMap(Int.init),
      let memory = a["memory_mib"].flatMap(UInt64.init), let disk = a["disk_mib"].flatMap(UInt64.init)
    else { return nil }
    // Values from a record anyone with libvirt access can edit: bounded, so no arithmetic on them traps.
    let limit = 1 << 31
    guard (0..<limit).contains(index), (0..<limit).contains(generation), (0..<limit).contains(vcpu), memory < UInt64(limit),
      disk < UInt64(limit)
    else { return nil }
    var ownership = NodeOwnership(
      project: a["project"] ?? "default", pool: pool, node: name, index: index, image: image, digest: a["digest"] ?? "", specHash: a["spec"] ?? "",
      generation: generation, vcpu: vcpu, memoryMiB: memory, diskMiB: disk, network: a["network"], labels: labels(tags),
      protect: a["protect"] != "false", replicas: a["replicas"].flatMap(Int.init) ?? 0, disk: a["disk"] ?? "")
    ownership.healthFailed = a["health"] == "failed"
    ownership.hooks = a["hooks"] ?? ""
    ownership.address = a["address"].flatMap { StaticAddresses.parse($0) }.map(StaticAddresses.text)
    ownership.seed = a["seed"].flatMap { $0.count <= 64 && $0.allSatisfy(\.isHexDigit) ? $0 : nil }
    switch a["role"] {
    case nil, "serving": break
    case "kept":
      // A kept record names its rollout and a time that fits in a double exactly; anything else
      // is not a record Drover wrote (treated as foreign: never touched).
      guard let by = a["kept_by"], let until = a["kept_until"].flatMap(Int64.init), (0..<(Int64(1) << 40)).contains(until) else { return nil }
      // How it waits: absent is stopped (records before hibernation); an unknown state is not
      // a record Drover wrote.
      var state: KeptState?
      if let s = a["kept_state"] {
        guard let known = KeptState(rawValue: s), known != .stopped else { return nil }
        state = known
      }
      ownership.kept = KeptNode(rollout: by, until: Double(until), reserves: a["kept_capacity"] != "disk-only", state: state)
    default: return nil
    }
    if let id = a["rollout"] {
      ownership.rollout = RolloutMark(
        id: id, phase: a["rollout_phase"] ?? "", fromImage: a["rollout_from"] ?? "", toImage: a["rollout_to"] ?? "", by: a["rollout_by"] ?? "",
        total: a["rollout_total"].flatMap(Int.init).map { min(max($0, 0), 1 << 20) } ?? 0)
    }
    return ownership
  }
}
