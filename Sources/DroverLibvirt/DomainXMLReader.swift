import DroverModel

/// Reads what drift detection needs from libvirt's domain XML.
///
/// libvirt writes this XML itself in a fixed, normalised form (memory always in KiB, single
/// quotes), so a few targeted scans are enough and far cheaper than a general XML parser.
enum DomainXMLReader {
  /// The shape from the persistent config XML and, for a running domain, the live XML.
  static func shape(config: String, live: String?) -> DomainShape {
    let live = live ?? config
    return DomainShape(
      vcpu: vcpus(config), maxVcpu: maxVcpus(config), memoryKiB: number(in: config, element: "memory") ?? 0, liveVcpu: vcpus(live),
      liveMemoryKiB: number(in: live, element: "currentMemory") ?? number(in: live, element: "memory") ?? 0,
      disks: disks(config), title: text(in: config, element: "title").map { XMLText.unescape(Substring($0)) })
  }

  /// The Drover ownership element inside a domain's `<metadata>`, if any.
  static func ownershipElement(_ xml: String) -> String? {
    guard let start = xml.range(of: "<\(OwnershipMetadata.prefix):node") else { return nil }
    let rest = xml[start.lowerBound...]
    if let close = rest.range(of: "</\(OwnershipMetadata.prefix):node>") {
      return String(rest[..<close.upperBound])
    }
    guard let end = rest.range(of: "/>") else { return nil }
    return String(rest[..<end.upperBound])
  }

  static func text(in xml: String, element: String) -> String? {
    guard let open = xml.range(of: "<\(element)") else { return nil }
    guard let gt = xml[open.upperBound...].firstIndex(of: ">") else { return nil }
    let body = xml.index(after: gt)
    guard let close = xml[body...].range(of: "</\(element)>") else { return nil }
    return String(xml[body..<close.lowerBound])
  }

  static func number(in xml: String, element: String) -> UInt64? {
    text(in: xml, element: element).flatMap { UInt64($0.trimmingCharacters()) }
  }

  /// `<vcpu current='N'>M</vcpu>` → N when present (the running count), else M.
  static func vcpus(_ xml: String) -> Int {
    guard let open = xml.range(of: "<vcpu") else { return 0 }
    let tag = xml[open.lowerBound...].prefix { $0 != ">" }
    if let current = XMLText.startTags(String(tag) + ">").first?["current"], let n = Int(current) { return n }
    return text(in: xml, element: "vcpu").flatMap { Int($0.trimmingCharacters()) } ?? 0
  }

  static func maxVcpus(_ xml: String) -> Int {
    text(in: xml, element: "vcpu").flatMap { Int($0.trimmingCharacters()) } ?? 0
  }

  static func disks(_ xml: String) -> [String] {
    var result: [String] = []
    var rest = Substring(xml)
    while let open = rest.range(of: "<disk ") {
      guard let close = rest[open.upperBound...].range(of: "</disk>") else { break }
      let disk = String(rest[open.lowerBound..<close.upperBound])
      if let source = XMLText.startTags(disk).first(where: { $0.name == "source" }) {
        if let pool = source["pool"], let volume = source["volume"] {
          result.append("\(pool)/\(volume)")
        } else if let file = source["file"] ?? source["dev"] {
          result.append(file)
        }
      }
      rest = rest[close.upperBound...]
    }
    return result
  }
}
