/// A count of nodes given either absolutely (`2`) or relative to the pool (`"25%"`).
public enum NodeQuantity: Sendable, Hashable, Codable, CustomStringConvertible {
  case count(Int)
  case percent(Int)

  /// Resolves against `total` nodes; `roundUp` chooses ceiling (surge, canary) or floor
  /// (unavailable, budget) rounding, as Kubernetes does for `maxSurge`/`maxUnavailable`.
  public func resolve(of total: Int, roundUp: Bool) -> Int {
    switch self {
    case .count(let n): return n
    case .percent(let p):
      let scaled = total * p
      return roundUp ? (scaled + 99) / 100 : scaled / 100
    }
  }

  public var description: String {
    switch self {
    case .count(let n): return "\(n)"
    case .percent(let p): return "\(p)%"
    }
  }
}

/// A size in bytes, written in specs with a unit: `512MiB`, `2GiB`, `10G`.
public struct ByteSize: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
  public var bytes: UInt64
  public init(bytes: UInt64) { self.bytes = bytes }
  public static func mebibytes(_ n: UInt64) -> ByteSize { ByteSize(bytes: n << 20) }
  public var mebibytes: UInt64 { bytes >> 20 }
  public var kibibytes: UInt64 { bytes >> 10 }
  public static func < (a: Self, b: Self) -> Bool { a.bytes < b.bytes }

  public var description: String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] as [(String, UInt64)]
    where bytes >= (1 << shift) && bytes % (1 << shift) == 0 {
      return "\(bytes >> shift)\(unit)"
    }
    return "\(bytes)B"
  }
}

/// A span of time in milliseconds, written in specs with a unit: `500ms`, `30s`, `5m`, `1h`.
///
/// Every wait in Drover is one of these, and every one has a finite default.
public struct TimeSpan: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
  public var milliseconds: Int
  public init(milliseconds: Int) { self.milliseconds = milliseconds }
  public static func seconds(_ s: Int) -> TimeSpan { TimeSpan(milliseconds: s * 1000) }
  public static func minutes(_ m: Int) -> TimeSpan { .seconds(m * 60) }
  public var seconds: Double { Double(milliseconds) / 1000 }
  public static func < (a: Self, b: Self) -> Bool { a.milliseconds < b.milliseconds }

  public var description: String {
    let ms = milliseconds
    if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
  }
}
