/// The name of a node's overlay volume: `drover.<project>.<pool>-<index>.g<generation>.qcow2`.
///
/// Why this shape: every overlay belongs to exactly one domain (one index, one generation), and
/// the name alone says whose it is. So an overlay no domain uses — left by a crash between
/// creating it and defining the domain, or between undefining a domain and deleting its disk —
/// can be recognised as Drover's own, of this project, and removed, while anything not named this
/// way is never touched. Project and pool names cannot contain `.`, so the parts never blur.
///
/// A node's cloud-init seed (`….seed`, a small ISO 9660 volume) is named the same way: it
/// belongs to the same one domain, goes with it, and is found and removed like an overlay when
/// a crash left it behind.
public struct OverlayName: Sendable, Hashable {
  public enum Kind: String, Sendable, Hashable, CaseIterable {
    case disk = "qcow2"
    case seed = "seed"
  }

  public var project: String
  public var pool: String
  public var index: Int
  public var generation: Int
  public var kind: Kind

  public init(project: String, pool: String, index: Int, generation: Int, kind: Kind = .disk) {
    self.project = project
    self.pool = pool
    self.index = index
    self.generation = generation
    self.kind = kind
  }

  /// The volume of `kind` that belongs to the node `o` records.
  public init(of o: NodeOwnership, kind: Kind = .disk) {
    self.init(project: o.project, pool: o.pool, index: o.index, generation: o.generation, kind: kind)
  }

  public var volume: String { "drover.\(project).\(NodeName.of(pool: pool, index: index)).g\(generation).\(kind.rawValue)" }

  /// The seed volume of the node this overlay belongs to.
  public var seed: OverlayName { OverlayName(project: project, pool: pool, index: index, generation: generation, kind: .seed) }

  /// The parts of a volume name, or nil when it is not named like a Drover overlay.
  ///
  /// Only the canonical spelling is Drover's (`web-01` or `g+1` never is). Read byte by byte:
  /// every observe, plan and fingerprint parses each volume of the pool (thousands per run).
  public init?(volume: String) {
    guard
      let parsed = volume.utf8.withContiguousStorageIfAvailable({ Self.parse($0) })
        ?? Array(volume.utf8).withUnsafeBufferPointer({ Self.parse($0) })
    else { return nil }
    self = parsed
  }

  static func parse(_ b: UnsafeBufferPointer<UInt8>) -> OverlayName? {
    // drover . project . pool-index . g generation . kind
    var dots: [Int] = []
    dots.reserveCapacity(4)
    for i in b.indices where b[i] == UInt8(ascii: ".") {
      dots.append(i)
      if dots.count > 4 { return nil }
    }
    guard dots.count == 4 else { return nil }
    let start = b.startIndex, end = b.endIndex
    let head = start..<dots[0], projectRange = (dots[0] + 1)..<dots[1], nodeRange = (dots[1] + 1)..<dots[2]
    let generationRange = (dots[2] + 1)..<dots[3], kindRange = (dots[3] + 1)..<end
    guard b[head].elementsEqual("drover".utf8) else { return nil }
    guard let kind = Kind.allCases.first(where: { b[kindRange].elementsEqual($0.rawValue.utf8) }) else { return nil }
    guard ProjectName.isValid(bytes: b[projectRange]) else { return nil }
    guard generationRange.count > 1, b[generationRange.lowerBound] == UInt8(ascii: "g"),
      let generation = canonicalPositive(b[(generationRange.lowerBound + 1)..<generationRange.upperBound])
    else { return nil }
    guard let dash = b[nodeRange].lastIndex(of: UInt8(ascii: "-")), let index = canonicalPositive(b[(dash + 1)..<nodeRange.upperBound]),
      PoolName.isValid(bytes: b[nodeRange.lowerBound..<dash])
    else { return nil }
    return OverlayName(
      project: String(decoding: b[projectRange], as: UTF8.self), pool: String(decoding: b[nodeRange.lowerBound..<dash], as: UTF8.self),
      index: index, generation: generation, kind: kind)
  }

  /// A positive decimal below 2^31 written without sign or leading zero, as `volume` writes it.
  static func canonicalPositive<C: Collection<UInt8>>(_ digits: C) -> Int? {
    guard let first = digits.first, first != UInt8(ascii: "0"), digits.count <= 10 else { return nil }
    var value = 0
    for d in digits {
      guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { return nil }
      value = value * 10 + Int(d - UInt8(ascii: "0"))
    }
    return value < 1 << 31 ? value : nil
  }

  /// The overlay a node record claims, when the record names a Drover overlay in `storagePool`.
  public init?(disk: String, storagePool: String) {
    guard disk.hasPrefix(storagePool + "/") else { return nil }
    self.init(volume: String(disk.dropFirst(storagePool.count + 1)))
  }

  /// Whether this overlay may be the disk of `o`: same project, pool, index and generation.
  public func belongs(to o: NodeOwnership) -> Bool {
    project == o.project && pool == o.pool && index == o.index && generation == o.generation
  }
}

/// Project names end up in volume names and metadata: letters, digits, `_` and `-` only.
public enum ProjectName {
  public static func isValid(_ name: String) -> Bool { isValid(bytes: name.utf8) }

  /// The same rule over UTF-8 bytes (every allowed character is one byte).
  static func isValid<C: Collection<UInt8>>(bytes: C) -> Bool {
    !bytes.isEmpty && bytes.count <= 64
      && bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
  }
}

/// Pool names: 1–40 lower-case letters, digits or '-', starting with a letter, not ending in '-'.
/// The one rule, for specs and for every pool name given on the command line (which become paths).
public enum PoolName {
  public static func isValid(_ text: String, maxLength: Int = 40) -> Bool { isValid(bytes: text.utf8, maxLength: maxLength) }

  /// The same rule over UTF-8 bytes (every allowed character is one byte): a–z first, then
  /// a–z, 0–9 or '-', not ending in '-'.
  static func isValid<C: Collection<UInt8>>(bytes: C, maxLength: Int = 40) -> Bool {
    guard let first = bytes.first, first >= 97 && first <= 122, bytes.count <= maxLength else { return false }
    var last: UInt8 = first
    for b in bytes {
      guard (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 45 else { return false }
      last = b
    }
    return last != 45
  }
}
