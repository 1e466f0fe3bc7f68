import Libvirt

/// How Drover notices a host that stopped answering between its own deadlines: libvirt's
/// keepalive, on every connection (local ones too), as `--keepalive-interval/--keepalive-count`.
///
/// Why here and not `Connection.KeepAlive`: commands may not import the C wrapper (layering), so
/// the adapter owns the value they pass.
public struct HostKeepAlive: Sendable, Equatable {
  /// Seconds without traffic before a ping.
  public var interval: Int32
  /// Unanswered pings before the connection is closed and every call waiting on it fails.
  public var count: UInt32

  public init(interval: Int32, count: UInt32) {
    self.interval = interval
    self.count = count
  }

  /// virsh's default: a host that stops answering is given up after ~20 s (interval × (count + 1)).
  public static let standard = HostKeepAlive(interval: 5, count: 3)

  var connectionValue: Connection.KeepAlive { Connection.KeepAlive(interval: interval, count: count) }
}
