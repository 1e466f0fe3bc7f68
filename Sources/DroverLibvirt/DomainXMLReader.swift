import DroverModel
import Foundation

/// Reads what drift detection needs from libvirt's domain XML.
///
/// libvirt writes this XML itself in a fixed, normalised form (memory always in KiB, single
/// quotes), so a few targeted scans are enough and far cheaper than a general XML parser. The
/// scans run over UTF-8 bytes with `memchr`/`memcmp`: drift reads two documents per running domain, and
/// Foundation's `String.range(of:)` (UTF-16, via CoreFoundation) was a third of a 1,000-node
/// drift's CPU time.
enum DomainXMLReader {
  /// The shape from the persistent config XML and, for a running domain, the live XML.
  static func shape(config: String, live: String?) -> DomainShape {
    shape(config: XMLBytes(config), live: live.map(XMLBytes.init))
  }

  /// The same from documents already in bytes (`observe` reads the ownership element from the
  /// same bytes: one copy of each document).
  static func shape(config c: XMLBytes, live l: XMLBytes?) -> DomainShape {
    let maxVcpu = maxVcpus(c), vcpu = vcpus(c, max: maxVcpu), memory = number(in: c, element: "memory")
    // Without a live document the live figures are the config's: read once.
    let liveVcpu = l.map { vcpus($0) } ?? vcpu
    let liveMemory = l.map { number(in: $0, element: "currentMemory") ?? number(in: $0, element: "memory") } ?? (number(in: c, element: "currentMemory") ?? memory)
    return DomainShape(
      vcpu: vcpu, maxVcpu: maxVcpu, memoryKiB: memory ?? 0, liveVcpu: liveVcpu, liveMemoryKiB: liveMemory ?? 0,
      disks: disks(c), networks: networks(c), title: c.text(of: "title").map { XMLText.unescape(Substring($0)) })
  }

  /// The `<source network='…'/>` of every `<interface type='network'>`.
  static func networks(_ xml: XMLBytes) -> [String] {
    var result: [String] = []
    var from = 0
    while let open = xml.find("<interface ", from: from) {
      guard let close = xml.find("</interface>", from: open) else { break }
      let tags = XMLText.startTags(xml.string(open, close))
      if tags.first?["type"] == "network", let source = tags.first(where: { $0.name == "source" }), let network = source["network"] {
        result.append(network)
      }
      from = close + 12
    }
    return result
  }

  /// The Drover ownership element inside a domain's `<metadata>`, if any: the one `drover:node`
  /// element that declares Drover's namespace. An element that borrows the prefix for another
  /// namespace is not Drover's, and a domain with two elements in Drover's namespace (one hidden
  /// inside someone else's metadata) has none Drover can trust: it is treated as foreign.
  static func ownershipElement(_ xml: String) -> String? { ownership(in: XMLBytes(xml))?.element }

  /// The ownership element (see `ownershipElement`) and its start tags, parsed once: `plan`
  /// reads one per domain, and the record's reading needs the tags the namespace check parsed.
  static func ownership(in b: XMLBytes) -> (element: String, tags: [XMLTag])? {
    let open = "<\(OwnershipMetadata.prefix):node", close = "</\(OwnershipMetadata.prefix):node>"
    var found: (element: String, tags: [XMLTag])?
    var from = 0
    while let start = b.find(open, from: from) {
      let element: String
      if let tagEnd = b.find(">", from: start), let end = b.find("/>", from: start), end + 1 == tagEnd {
        element = b.string(start, end + 2)
      } else if let end = b.find(close, from: start) {
        element = b.string(start, end + close.utf8.count)
      } else {
        return nil
      }
      from = start + open.utf8.count
      let tags = XMLText.startTags(element)
      guard tags.first?["xmlns:\(OwnershipMetadata.prefix)"] == OwnershipMetadata.namespace else { continue }
      if found != nil { return nil }
      found = (element, tags)
    }
    return found
  }

  /// The text between `<element …>` and `</element>` (first occurrence).
  static func text(in xml: String, element: String) -> String? { XMLBytes(xml).text(of: element) }

  static func number(in xml: XMLBytes, element: String) -> UInt64? {
    xml.trimmedText(of: element).flatMap { UInt64($0) }
  }

  /// `<vcpu current='N'>M</vcpu>` → N when present (the running count), else M.
  static func vcpus(_ xml: XMLBytes, max: Int? = nil) -> Int {
    if let tag = xml.startTag(of: "vcpu"), let current = XMLText.startTags(tag).first?["current"], let n = Int(current) { return n }
    return max ?? maxVcpus(xml)
  }

  static func maxVcpus(_ xml: XMLBytes) -> Int {
    xml.trimmedText(of: "vcpu").flatMap { Int($0) } ?? 0
  }

  static func disks(_ xml: XMLBytes) -> [String] {
    var result: [String] = []
    var from = 0
    while let open = xml.find("<disk ", from: from) {
      guard let close = xml.find("</disk>", from: open) else { break }
      // Its first `<source …>` tag, parsed alone (not every tag of the disk: once per node of a plan).
      if let at = xml.openTag(of: "source", from: open), at < close, let gt = xml.find(">", from: at),
        let source = XMLText.startTags(xml.string(at, gt + 1)).first
      {
        if let pool = source["pool"], let volume = source["volume"] {
          result.append("\(pool)/\(volume)")
        } else if let file = source["file"] ?? source["dev"] {
          result.append(file)
        }
      }
      from = close + 7
    }
    return result
  }
}

/// A document's UTF-8 bytes with substring search by `memmem`.
struct XMLBytes {
  let bytes: [UInt8]

  init(_ text: String) { bytes = Array(text.utf8) }

  /// Byte offset of the first `needle` at or after `from` (`memchr` for its first byte, then
  /// `memcmp`; glibc's `memmem` is not visible to Swift).
  func find(_ needle: String, from: Int = 0) -> Int? {
    // A literal needle is contiguous UTF-8 already: no copy per search.
    if let hit = needle.utf8.withContiguousStorageIfAvailable({ find(bytes: $0, from: from) }) { return hit }
    return Array(needle.utf8).withUnsafeBufferPointer { find(bytes: $0, from: from) }
  }

  func find(bytes n: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
    guard let first = n.first, let needle = n.baseAddress, from >= 0, from + n.count <= bytes.count else { return nil }
    return bytes.withUnsafeBufferPointer { hay -> Int? in
      let base = hay.baseAddress!
      let last = hay.count - n.count
      var i = from
      while i <= last {
        guard let p = memchr(base + i, Int32(first), last - i + 1) else { return nil }
        let j = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(p))
        if memcmp(base + j, needle, n.count) == 0 { return j }
        i = j + 1
      }
      return nil
    }
  }

  func string(_ from: Int, _ to: Int) -> String {
    String(decoding: bytes[from..<min(to, bytes.count)], as: UTF8.self)
  }

  /// `<element` followed by a space, `>` or `/`, so `<memory` never matches `<memoryBacking`.
  func openTag(of element: String, from: Int = 0) -> Int? {
    var at = from
    while let hit = find("<" + element, from: at) {
      let after = hit + element.utf8.count + 1
      if after < bytes.count, [UInt8(ascii: " "), UInt8(ascii: ">"), UInt8(ascii: "/"), 0x0A, 0x09].contains(bytes[after]) { return hit }
      at = hit + 1
    }
    return nil
  }

  /// The start tag `<element …>` itself.
  func startTag(of element: String) -> String? {
    guard let open = openTag(of: element), let gt = find(">", from: open) else { return nil }
    return string(open, gt + 1)
  }

  /// `text(of:)` without leading and trailing spaces and newlines, trimmed on the bytes.
  func trimmedText(of element: String) -> String? {
    guard let open = openTag(of: element), let gt = find(">", from: open) else { return nil }
    guard let close = find("</\(element)>", from: gt) else { return nil }
    var from = gt + 1, to = close
    while from < to && (bytes[from] == 0x20 || bytes[from] == 0x0A) { from += 1 }
    while to > from && (bytes[to - 1] == 0x20 || bytes[to - 1] == 0x0A) { to -= 1 }
    return string(from, to)
  }

  func text(of element: String) -> String? {
    guard let open = openTag(of: element), let gt = find(">", from: open) else { return nil }
    guard let close = find("</\(element)>", from: gt) else { return nil }
    return string(gt + 1, close)
  }
}
