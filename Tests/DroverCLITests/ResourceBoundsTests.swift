import Foundation
import Testing

/// #16: thousands of pools must not exhaust descriptors (a lock file held open per pool did, at
/// ~1,000 pools under `ulimit -n 1024`).
@Suite struct ResourceBoundsTests {
  @Test func twoThousandPoolsApplyUnderAThousandDescriptors() throws {
    let h = try CLIHarness()
    let prefix = CLIHarness.unique("fd")
    for i in 0..<2_000 { try h.writePool("\(prefix)-p\(i)", replicas: i == 0 ? 1 : 0) }
    let run = try h.run(["apply", "--auto-approve"], openFiles: 1024)
    #expect(run.status == 0, "\(run.stderr.suffix(2000))")
    #expect(try h.holder.domain(named: "\(prefix)-p0-1") != nil, "the one node was created")
    // Every pool was locked: the holder files name this apply, and no lock outlives it.
    let locks = try FileManager.default.contentsOfDirectory(atPath: h.dir.appendingPathComponent(".drover/locks").path)
    #expect(locks.filter { $0.hasPrefix(prefix) }.count == 2_000)
    try h.writePool("\(prefix)-p0", replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"], openFiles: 1024).status == 0)
    #expect(try h.holder.domain(named: "\(prefix)-p0-1") == nil)
  }
}
