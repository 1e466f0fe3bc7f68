import DroverBasics
import DroverModel

/// The `<drover:node>` metadata element: Drover's ownership mark on a domain.
///
/// Lives in its own XML namespace so it never collides with other tools' metadata; libvirt
/// stores it verbatim (re-serialised) and returns it from `virDomainGetMetadata`.
public enum OwnershipMetadata {
  public static let namespace = "https://drover.dev/xmlns/node/1"
  public static let prefix = "drover"
  /// Bumped when the element's shape changes; older shapes stay readable.
  static let formatVersion = "1"

  /// The element as Drover writes it (every value escaped).
  ///
  /// `forSetMetadata` leaves out the prefix and namespace declaration: `virDomainSetMetadata`
  /// adds them itself from its key and URI and fails if the element already declares them.
  public static func render(_ o: NodeOwnership, forSetMetadata: Bool = false) -> String {
    var attrs: [(String, String)] = [
      ("format", formatVersion), ("project", o.project), ("pool", o.pool), ("name", o.node), ("index", String(o.index)), ("image", o.image),
      ("digest", o.digest), ("spec", o.specHash), ("generation", String(o.generation)), ("vcpu", String(o.vcpu)),
      ("memory_mib", String(o.memoryMiB)), ("disk_mib", String(o.diskMiB)), ("protect", o.protect ? "true" : "false"),
    ]
    attrs.append(("replicas", String(o.replicas)))
    if !o.disk.isEmpty { attrs.append(("disk", o.disk)) }
    if let network = o.network { attrs.append(("network", network)) }
    if o.healthFailed { attrs.append(("health", "failed")) }
    attrs.append(("seal", seal(attrs, labels: o.labels)))
    let p = forSetMetadata ? "" : prefix + ":"
    var xml = forSetMetadata ? "<node" : "<\(p)node xmlns:\(prefix)=\"\(namespace)\""
    for (k, v) in attrs { xml += " \(k)=\"\(XMLText.attribute(v))\"" }
    if o.labels.isEmpty { return xml + "/>" }
    xml += ">"
    for key in o.labels.keys.sorted() {
      xml += "<\(p)label key=\"\(XMLText.attribute(key))\" value=\"\(XMLText.attribute(o.labels[key]!))\"/>"
    }
    return xml + "</\(p)node>"
  }

  /// A digest over every attribute and label, stored in the record: an edit by hand breaks it.
  ///
  /// The canonical text is the attributes as `key=value` lines sorted by key (the seal itself
  /// left out), then `label key=value` lines sorted by key. Built as bytes in one buffer: `plan`
  /// checks one seal per domain, so this is on the hot path at fleet scale.
  static func seal(_ attrs: [(String, String)], labels: [String: String]) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(512)
    var first = true
    for (k, v) in attrs.sorted(by: { $0.0 < $1.0 }) where k != "seal" {
      if !first { bytes.append(0x0A) }
      first = false
      bytes.append(contentsOf: k.utf8)
      bytes.append(UInt8(ascii: "="))
      bytes.append(contentsOf: v.utf8)
    }
    bytes.append(0x0A)
    first = true
    for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
      if !first { bytes.append(0x0A) }
      first = false
      bytes.append(contentsOf: "label ".utf8)
      bytes.append(contentsOf: k.utf8)
      bytes.append(UInt8(ascii: "="))
      bytes.append(contentsOf: v.utf8)
    }
    return String(ContentDigest.of(bytes).hex.prefix(16))
  }

  /// What one read of a domain's metadata element says: who owns it, whether its seal matches,
  /// and a digest that changes whenever the element does (for saved-plan fingerprints).
  public struct Reading: Sendable {
    public var ownership: NodeOwnership?
    public var intact: Bool
    public var digest: String
  }

  /// Reads the element with one scan: `plan` does this once per domain, so parsing, the seal
  /// check and the fingerprint digest share the scanned tags. An intact seal already digests every
  /// attribute and label, so it is the fingerprint; anything else is digested whole. A record with
  /// no seal (written before seals existed) counts as intact, so upgrading Drover never reports
  /// drift or plans changes.
  public static func read(_ xml: String) -> Reading {
    let tags = XMLText.startTags(xml)
    let ownership = parse(tags)
    var intact = false
    var digest: String?
    if let root = tags.first {
      if let stored = root["seal"] {
        intact = seal(sealedAttributes(root), labels: labels(tags)) == stored
        if intact { digest = "seal:" + stored }
      } else {
        intact = true  // written before seals existed
      }
    }
    return Reading(ownership: ownership, intact: intact, digest: digest ?? ContentDigest.of(xml).hex)
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
      protect: a["protect"] == "true", replicas: a["replicas"].flatMap(Int.init) ?? 0, disk: a["disk"] ?? "")
    ownership.healthFailed = a["health"] == "failed"
    return ownership
  }
}
