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
  public enum Kind: String, Sendable, Hashable {
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

  public var volume: String { "drover.\(project).\(pool)-\(index).g\(generation).\(kind.rawValue)" }

  /// The seed volume of the node this overlay belongs to.
  public var seed: OverlayName { OverlayName(project: project, pool: pool, index: index, generation: generation, kind: .seed) }

  /// The parts of a volume name, or nil when it is not named like a Drover overlay.
  public init?(volume: String) {
    let parts = volume.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 5, parts[0] == "drover", let kind = Kind(rawValue: String(parts[4])), !parts[1].isEmpty, parts[3].hasPrefix("g"),
      let generation = Int(parts[3].dropFirst()), generation > 0,
      let dash = parts[2].lastIndex(of: "-"), let index = Int(parts[2][parts[2].index(after: dash)...]), index > 0
    else { return nil }
    let pool = String(parts[2][..<dash])
    guard PoolName.isValid(pool), ProjectName.isValid(String(parts[1])), index < 1 << 31, generation < 1 << 31 else { return nil }
    self.init(project: String(parts[1]), pool: pool, index: index, generation: generation, kind: kind)
    // Only the canonical spelling is Drover's: `web-01` or `g+1` never is.
    guard self.volume == volume else { return nil }
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
  public static func isValid(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 64
      && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
  }
}

/// Pool names: 1–40 lower-case letters, digits or '-', starting with a letter, not ending in '-'.
/// The one rule, for specs and for every pool name given on the command line (which become paths).
public enum PoolName {
  public static func isValid(_ text: String, maxLength: Int = 40) -> Bool {
    guard let first = text.first, text.count <= maxLength, first.isLetter, !text.hasSuffix("-") else { return false }
    return text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
  }
}
