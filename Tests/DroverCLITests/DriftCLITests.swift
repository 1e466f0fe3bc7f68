import Foundation
import Libvirt
import Testing

/// `drover drift` against libvirtd's test driver, with the world changed behind Drover's back.
@Suite(.serialized) struct DriftCLITests {
  func virsh(_ args: [String]) throws {
    #expect(try CLIHarness.virsh(args) == 0, "virsh \(args.joined(separator: " "))")
  }

  func findings(_ h: CLIHarness) throws -> (status: Int32, kinds: [String], json: [String: Any]) {
    let run = try h.run(["drift", "--json"])
    let json = try h.json(run.stdout)
    let kinds = (json["findings"] as? [[String: Any]] ?? []).filter { $0["drift"] as? Bool == true }
      .map { "\($0["kind"] as! String) \($0["node"] as! String)" }.sorted()
    return (run.status, kinds, json)
  }

  @Test func everyOutOfBandChangeIsFoundAndNothingIsWritten() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("dr")
    try h.writePool(pool, replicas: 6)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    // Keep only the project key: drift must write no lock, journal or hosts file.
    let state = h.dir.appendingPathComponent(".drover")
    for entry in try FileManager.default.contentsOfDirectory(atPath: state.path) where entry != "key" {
      try FileManager.default.removeItem(at: state.appendingPathComponent(entry))
    }

    let clean = try findings(h)
    #expect(clean.status == 0 && clean.kinds.isEmpty)
    #expect((clean.json["libvirt_calls"] as? [String: Int])?["writes"] == 0)

    try virsh(["setmem", "\(pool)-1", "200000", "--live"])
    try virsh(["setvcpus", "\(pool)-2", "2", "--config", "--maximum"])
    try virsh(["undefine", "\(pool)-3"])  // still running: transient now
    try virsh(["destroy", "\(pool)-3"])
    // Edit one value of the ownership record, keeping everything else (as a person with virsh would).
    let record = try #require(try h.holder.domain(named: "\(pool)-4")?.metadata(namespace: "https://drover.dev/xmlns/node/1"))
    let edited = record.replacingOccurrences(of: " xmlns:drover=\"https://drover.dev/xmlns/node/1\"", with: "")
      .replacingOccurrences(of: "drover:", with: "").replacingOccurrences(of: "generation=\"1\"", with: "generation=\"7\"")
    #expect(edited != record)
    try virsh(["metadata", "\(pool)-4", "https://drover.dev/xmlns/node/1", "--key", "drover", "--config", "--live", "--set", edited])
    try virsh(["destroy", "\(pool)-5"])
    try virsh(["undefine", "\(pool)-6"])
    try virsh(["destroy", "\(pool)-6"])
    _ = try h.holder.defineDomain(
      xml: "<domain type='test'><name>\(pool)-6</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")

    let drift = try findings(h)
    #expect(drift.status == 2)
    #expect(drift.kinds == [
      "foreign-name \(pool)-6", "memory \(pool)-1", "missing \(pool)-3", "record-mismatch \(pool)-4", "state \(pool)-5",
      "vcpu \(pool)-2",
    ])
    #expect((drift.json["libvirt_calls"] as? [String: Int])?["writes"] == 0)
    #expect(try FileManager.default.contentsOfDirectory(atPath: state.path) == ["key"], "no lock or journal written")

    let text = try h.run(["drift"])
    #expect(text.stdout.contains("\(pool)-1 on \(CLIHarness.uri) [pool \(pool)]: memory"))
    #expect(text.stdout.contains("fix:      virsh -c \(CLIHarness.uri) setmem \(pool)-1 262144"))

    // Pending is not drift, unless asked.
    try h.writePool(pool, replicas: 7)
    let metrics = h.dir.appendingPathComponent("drover.prom").path
    let withPending = try h.run(["drift", "--prometheus", metrics])
    #expect(withPending.stdout.contains("Pending, not drift"))
    let prom = try String(contentsOfFile: metrics, encoding: .utf8)
    #expect(prom.contains("drover_drift_findings{pool=\"\(pool)\",kind=\"memory\"} 1"))
    #expect(prom.contains("drover_drift_findings{pool=\"\(pool)\",kind=\"pending\"} 1"))
    #expect(prom.contains("drover_drift_check_success 1"))

    try h.holder.domain(named: "\(pool)-6")?.undefine()
    try h.writePool(pool, replicas: 0)
    _ = try h.run(["apply", "--auto-approve"])
  }

  @Test func pendingOnlyExitsZeroUnlessIncluded() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("pe")
    try h.writePool(pool, replicas: 1)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 1, image: "demo@v2")
    #expect(try h.run(["drift"]).status == 0)
    #expect(try h.run(["drift", "--include-pending"]).status == 2)
    try h.writePool(pool, replicas: 0)
    _ = try h.run(["apply", "--auto-approve"])
  }

  @Test func deadHostExitsOneQuicklyNotDrift() throws {
    let h = try CLIHarness()
    try "name: far\nhosts: ['test+unix:///default?socket=/nonexistent/sock']\nreplicas: 1\nimage: demo@v1\n"
      .write(to: h.dir.appendingPathComponent("pools/far.yaml"), atomically: true, encoding: .utf8)
    let metrics = h.dir.appendingPathComponent("m.prom").path
    let run = try h.run(["drift", "--connect-timeout", "60", "--prometheus", metrics])
    #expect(run.status == 1)
    // The refused connection ends it, not the connect deadline.
    #expect(run.stderr.contains("could not check") && !run.stderr.contains("no answer from"), "\(run.stderr)")
    #expect(try String(contentsOfFile: metrics, encoding: .utf8).contains("drover_drift_check_success 0"))
  }
}
