import Foundation

/// Counts libvirt calls made by a backend, by kind: the observe call budget and "drift makes no
/// write call" are asserted on these numbers.
public final class LibvirtCallCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var counts: [String: Int] = [:]

  public init() {}

  /// The calls that change a host.
  public static let writeKinds: Set<String> = ["define", "start", "destroy", "undefine", "setMetadata"]

  /// Domains returned by bulk listings (not a call: the denominator of the per-domain budget).
  public var domainsListed: Int { lock.withLock { listed } }
  private var listed = 0

  func recordListed(_ n: Int) { lock.withLock { listed += n } }

  func record(_ kind: String) {
    lock.lock()
    counts[kind, default: 0] += 1
    lock.unlock()
  }

  public subscript(kind: String) -> Int {
    lock.lock()
    defer { lock.unlock() }
    return counts[kind, default: 0]
  }

  public var total: Int {
    lock.lock()
    defer { lock.unlock() }
    return counts.values.reduce(0, +)
  }

  public var writes: Int {
    lock.lock()
    defer { lock.unlock() }
    return counts.filter { Self.writeKinds.contains($0.key) }.values.reduce(0, +)
  }

  public func reset() {
    lock.lock()
    counts = [:]
    listed = 0
    lock.unlock()
  }
}
