import Foundation

/// Counts libvirt calls made by a backend, by kind: the observe call budget and "drift makes no
/// write call" are asserted on these numbers.
public final class LibvirtCallCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var counts: [String: Int] = [:]

  public init() {}

  /// The calls that change a host.
  public static let writeKinds: Set<String> = ["define", "start", "destroy", "undefine", "setMetadata"]

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
    lock.unlock()
  }
}
