import Foundation
import Testing

/// A host that no pool file names any more, where the project still has nodes: remembered in
/// `.drover/hosts`, read like a declared one, its leftovers planned, removed, then forgotten; an
/// unreadable one is an error, never "No changes". The host is a relay in front of libvirtd's
/// socket, so it has a URI of its own that only the removed pool file named.
@Suite(.serialized) struct FormerHostTests {
  func poolFile(_ h: CLIHarness, _ pool: String) -> URL { h.dir.appendingPathComponent("pools/\(pool).yaml") }

  func deploy(_ h: CLIHarness, _ pool: String, on uri: String) throws {
    try "name: \(pool)\nhosts: [\"\(uri)\"]\nreplicas: 2\nimage: demo@v1\n".write(to: poolFile(h, pool), atomically: true, encoding: .utf8)
    let apply = try h.run(["apply", "--auto-approve"])
    #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
    #expect(try h.nodes(pool).count == 2)
    #expect(try hostsFile(h).contains(uri), "apply remembered the host")
  }

  func hostsURL(_ h: CLIHarness) -> URL { h.dir.appendingPathComponent(".drover/hosts.\(h.project)") }

  func hostsFile(_ h: CLIHarness) throws -> String {
    (try? String(contentsOf: hostsURL(h), encoding: .utf8)) ?? ""
  }

  @Test func leftoversOnAHostNoPoolNamesArePlannedRemovedAndTheHostForgotten() throws {
    let relay = try FrozenHostTests.Relay(freezeAt: Int(Int32.max))
    let h = try CLIHarness()
    let pool = CLIHarness.unique("fh")
    try deploy(h, pool, on: relay.uri)
    try FileManager.default.removeItem(at: poolFile(h, pool))

    let kept = try h.run(["plan", "--detailed-exitcode"])
    #expect(kept.status == 0 && kept.stdout.contains("Pool \(pool) is not declared in pools/: kept"), "without --prune: kept and shown: \(kept.stdout)")
    let plan = try h.run(["plan", "--detailed-exitcode", "--prune"])
    #expect(plan.status == 2, "\(plan.stdout)\(plan.stderr)")
    #expect(plan.stdout.contains("\(pool)-1") && plan.stdout.contains("\(pool)-2") && plan.stdout.contains("pool \(pool) is not declared in pools/ (--prune)"), "\(plan.stdout)")
    let drift = try h.run(["drift"])
    #expect(drift.status == 2 && drift.stdout.contains("\(pool)-1"), "drift reports the leftovers: \(drift.stdout)\(drift.stderr)")

    let apply = try h.run(["apply", "--auto-approve", "--prune"])
    #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
    #expect(try h.nodes(pool).isEmpty, "the leftover nodes were deleted")
    try h.expectOverlaysMatchDomains(pool, "after removing the leftovers")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    let remembered = try hostsFile(h)
    #expect(!remembered.contains(relay.uri), "a host read with nothing of the project's is forgotten: \(remembered)")
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
  }

  /// The same daemon under a second URI: a remembered spelling of a declared host is never read
  /// as a second host, so its nodes are never "duplicates" to delete.
  @Test func aRememberedAliasOfADeclaredHostIsForgottenNotDeduplicated() throws {
    let relay = try FrozenHostTests.Relay(freezeAt: Int(Int32.max))
    let h = try CLIHarness()
    let pool = CLIHarness.unique("fa")
    try deploy(h, pool, on: relay.uri)
    let uuids = try h.nodes(pool).map(\.uuid)
    // The pool now names the daemon by its plain URI; the relay's spelling is only remembered.
    try "name: \(pool)\nhosts: [\"\(CLIHarness.uri)\"]\nreplicas: 2\nimage: demo@v1\n".write(to: poolFile(h, pool), atomically: true, encoding: .utf8)
    // Records are bound to the host entry they were written through: under the new spelling
    // they are refused (never deleted as duplicates, never rewritten) until a person adopts them.
    let plan = try h.run(["plan", "--detailed-exitcode"])
    #expect(plan.status == 1 && plan.stderr.contains("Drover will not touch it") && !plan.stdout.contains("duplicate"), "\(plan.stdout)\(plan.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 1)
    #expect(try h.nodes(pool).map(\.uuid) == uuids, "the nodes are untouched")
    for i in 1...2 {
      let adopt = try h.run(["adopt", "\(pool)-\(i)", "--host", CLIHarness.uri])
      #expect(adopt.status == 0, "\(adopt.stdout)\(adopt.stderr)")
    }
    let adopted = try h.run(["plan", "--detailed-exitcode"])
    #expect(adopted.status == 0, "after adopt, no changes and no duplicates: \(adopted.stdout)\(adopted.stderr)")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.nodes(pool).map(\.uuid) == uuids, "the nodes are untouched")
    // Both spellings declared: an error, never a delete.
    try "name: \(pool)\nhosts: [\"\(CLIHarness.uri)\", \"\(relay.uri)\"]\nreplicas: 2\nimage: demo@v1\n".write(to: poolFile(h, pool), atomically: true, encoding: .utf8)
    let both = try h.run(["apply", "--auto-approve"])
    #expect(both.status == 1 && both.stderr.contains("Drover will not touch it"), "\(both.stdout)\(both.stderr)")
    #expect(try h.nodes(pool).map(\.uuid) == uuids, "still untouched")
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func aFormerHostThatCannotBeReadIsAnErrorNeverNoChanges() throws {
    let relay = try FrozenHostTests.Relay(freezeAt: Int(Int32.max))
    let h = try CLIHarness()
    let pool = CLIHarness.unique("fu")
    try deploy(h, pool, on: relay.uri)
    try FileManager.default.removeItem(at: poolFile(h, pool))
    relay.stop()
    let other = CLIHarness.unique("fo")
    try h.writePool(other, replicas: 0)

    for command in [["plan"], ["apply", "--auto-approve"], ["drift"], ["plan", "--exclude", other], ["plan", "--target", other]] {
      let run = try h.run(command + ["--connect-timeout", "5"])
      #expect(run.status == 1, "\(command): \(run.stdout)\(run.stderr)")
      #expect(run.stderr.contains("which no pool names any more") || run.stderr.contains("could not check"), "\(command): \(run.stderr)")
      #expect(run.stderr.contains(relay.socket), "\(command) names the host: \(run.stderr)")
      #expect(!run.stdout.contains("No changes") && !run.stdout.contains("No drift:"), "\(command): \(run.stdout)")
    }
    #expect(try h.nodes(pool).count == 2, "nothing was touched")
    #expect(try hostsFile(h).contains(relay.uri), "an unread host is not forgotten")

    // The README's way out: edit the file. Here it points at the same daemon under its plain URI.
    try "\(CLIHarness.uri)\n".write(to: hostsURL(h), atomically: true, encoding: .utf8)
    #expect(try h.run(["plan"]).stderr.contains("Drover will not touch it"), "records bound to the relay's spelling are refused under another")
  }

  @Test func aHostsFileLineThatIsNotAURIIsALocatedError() throws {
    let h = try CLIHarness()
    try h.writePool(CLIHarness.unique("hf"), replicas: 0)
    let state = h.dir.appendingPathComponent(".drover")
    try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
    for bad in ["$(touch /tmp/pwned) x", "qemu+ext:///system?command=/tmp/x", "qemu+ssh://h/system?netcat=/tmp/nc", "qemu+ssh://h/system?Command=/tmp/x"] {
      try "# remembered\r\n\(CLIHarness.uri)\r\n\(bad)\n".write(to: hostsURL(h), atomically: true, encoding: .utf8)
      for command in [["plan"], ["apply", "--auto-approve"], ["drift"], ["status"]] {
        let run = try h.run(command)
        #expect(run.status == 1, "\(command) with \(bad)")
        #expect(run.stderr.contains(".drover/hosts.\(h.project):3:1: error: line 3 of"), "\(command): \(run.stderr)")
      }
    }
    // Not a regular file (a FIFO would hang a plain read): refused, not waited on.
    try FileManager.default.removeItem(at: hostsURL(h))
    #expect(mkfifo(hostsURL(h).path, 0o644) == 0)
    let fifo = try h.run(["plan"])
    #expect(fifo.status == 1 && fifo.stderr.contains("not a regular file"), "\(fifo.stderr)")
  }
}
