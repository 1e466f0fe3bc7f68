import ArgumentParser
import DroverLibvirt
import Testing

@testable import DroverCommands

/// #39: keepalive by default where a command changes nodes, off by default for the read-only
/// ones (plan, drift, status: every read bounded by --call-timeout); what is asked for is kept.
@Suite struct KeepAliveDefaultsTests {
  static let table: [(arguments: [String], changes: HostKeepAlive?, readOnly: HostKeepAlive?)] = [
    ([], .standard, nil),
    (["--keepalive-interval", "0"], nil, nil),
    (["--keepalive-interval", "1", "--keepalive-count", "2"], HostKeepAlive(interval: 1, count: 2), HostKeepAlive(interval: 1, count: 2)),
    (["--keepalive-count", "7"], HostKeepAlive(interval: 5, count: 7), HostKeepAlive(interval: 5, count: 7)),
    (["--keepalive-interval", "9"], HostKeepAlive(interval: 9, count: 3), HostKeepAlive(interval: 9, count: 3)),
  ]

  @Test(arguments: table)
  func keepAliveAsAskedOrByDefault(_ row: (arguments: [String], changes: HostKeepAlive?, readOnly: HostKeepAlive?)) throws {
    let options = try ProjectOptions.parse(row.arguments)
    #expect(options.keepAlive(byDefault: true) == row.changes, "\(row.arguments)")
    #expect(options.keepAlive(byDefault: false) == row.readOnly, "\(row.arguments)")
  }
}
