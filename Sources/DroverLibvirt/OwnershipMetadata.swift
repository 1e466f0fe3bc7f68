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
  static func seal(_ attrs: [(String, String)], labels: [String: String]) -> String {
    var text = attrs.filter { $0.0 != "seal" }.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "\n")
    text += "\n" + labels.sorted { $0.key < $1.key }.map { "label \($0.key)=\($0.value)" }.joined(separator: "\n")
    return String(ContentDigest.of(text).hex.prefix(16))
  }

  /// Whether a parsed record's seal matches its content. A record with no seal (written before
  /// seals existed) counts as intact, so upgrading Drover never reports drift or plans changes.
  public static func isIntact(_ xml: String) -> Bool {
    let tags = XMLText.startTags(xml)
    guard let root = tags.first else { return false }
    guard let stored = root.attributes["seal"] else { return true }
    var labels: [String: String] = [:]
    for tag in tags.dropFirst() where tag.name.hasSuffix(":label") || tag.name == "label" {
      if let k = tag.attributes["key"], let v = tag.attributes["value"] { labels[k] = v }
    }
    let attrs = root.attributes.filter { !$0.key.hasPrefix("xmlns") }.map { ($0.key, $0.value) }
    return seal(attrs, labels: labels) == stored
  }

  /// Parses the element back; nil when it is not a well-formed Drover node record (treated as foreign).
  public static func parse(_ xml: String) -> NodeOwnership? {
    let tags = XMLText.startTags(xml)
    guard let root = tags.first, root.name.hasSuffix(":node") || root.name == "node" else { return nil }
    let a = root.attributes
    guard let pool = a["pool"], let name = a["name"], let index = a["index"].flatMap(Int.init), let image = a["image"],
      let generation = a["generation"].flatMap(Int.init), let vcpu = a["vcpu"].flatMap(Int.init),
      let memory = a["memory_mib"].flatMap(UInt64.init), let disk = a["disk_mib"].flatMap(UInt64.init)
    else { return nil }
    var labels: [String: String] = [:]
    for tag in tags.dropFirst() where tag.name.hasSuffix(":label") || tag.name == "label" {
      if let k = tag.attributes["key"], let v = tag.attributes["value"] { labels[k] = v }
    }
    return NodeOwnership(
      project: a["project"] ?? "default", pool: pool, node: name, index: index, image: image, digest: a["digest"] ?? "", specHash: a["spec"] ?? "",
      generation: generation, vcpu: vcpu, memoryMiB: memory, diskMiB: disk, network: a["network"], labels: labels,
      protect: a["protect"] == "true", replicas: a["replicas"].flatMap(Int.init) ?? 0, disk: a["disk"] ?? "")
  }
}
