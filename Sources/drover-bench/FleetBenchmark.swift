import DroverBasics
import DroverLibvirt
import DroverModel
import Foundation
import Libvirt

/// Scenarios 1–3 at fleet scale on libvirtd's test driver (`test+unix:///default`, the real RPC
/// path): apply (create), plan with no changes, and drift — each against the C floor, a
/// libvirt-python floor, `virsh`, `kcli` and Ansible's `community.libvirt.virt`, in one run.
///
/// The test driver keeps its state only while a client is connected, so this process holds a
/// connection for the whole benchmark; every other program sees the same inventory through it.
enum FleetBenchmark {
  static let uri = "test+unix:///default"
  static let project = "bench"

  struct Setup {
    var drover: String
    var runs: Int
    var project: ScratchProject
    var work: String { project.path }
    var floor: String
    var peers: Peers
    var holder: LibvirtHostBackend
    var env: [String: String] { ["DROVER_PROJECT": FleetBenchmark.project] }
  }

  static func run(drover: String, runs: Int, sizes: [Int], repo: String) throws -> [String] {
    let project = try ScratchProject("fleet")
    defer { project.remove() }
    let work = project.path
    let setup = Setup(
      drover: drover, runs: runs, project: project, floor: try buildFloor(work, repo: repo), peers: Peers(repo: repo, work: work),
      holder: try LibvirtHostBackend.connect(uri, keyring: Keyring(project: "bench", key: nil), imagePool: "drover-images"))
    var lines: [String] = []
    for n in sizes {
      lines += try fleet(n, setup)
    }
    return lines
  }

  static func fleet(_ n: Int, _ s: Setup) throws -> [String] {
    let pool = "fleet\(n)"
    let big = n >= 5000
    var lines = ["", "-- \(n) nodes on \(uri)"]

    // 2. Apply, create n nodes: drover vs the serial C define+start loop, interleaved; the last
    // drover run leaves the nodes in place for plan and drift.
    try s.project.writePool(name: pool, host: uri, replicas: n)
    try s.holder.ensureImagePool(name: "drover-images", directory: "/var/lib/drover/images")
    var apply = Contest()
    // Each run starts from no nodes; removing the last run's nodes is not timed (it was, before
    // 2026-12-06, for every contender alike: it pulled every ratio toward 1).
    apply.add("drover apply --auto-approve", runs: s.runs, setup: { try removeDomains(s.holder, prefix: "\(pool)-") }) {
      try check(runProcess(s.drover, ["apply", "--auto-approve"], cwd: s.work, environment: s.env), "drover apply")
    }
    apply.add("drover apply, keepalive off", runs: s.runs, setup: { try removeDomains(s.holder, prefix: "\(pool)-") }) {
      try check(runProcess(s.drover, ["apply", "--auto-approve", "--keepalive-interval", "0"], cwd: s.work, environment: s.env), "drover apply")
    }
    apply.add("floor: C define+start loop, serial", runs: s.runs, setup: { try removeDomains(s.holder, prefix: "floor\(n)-") }) {
      try check(runProcess(s.floor, [uri, "create", "floor\(n)", "\(n)", "drover-images"]), "libvirt-floor create")
    }
    let a = apply.run()
    try removeDomains(s.holder, prefix: "floor\(n)-")
    if try countDomains(s.holder, prefix: "\(pool)-") != n {
      try check(runProcess(s.drover, ["apply", "--auto-approve"], cwd: s.work, environment: s.env), "drover apply")
    }
    lines.append("apply, create \(n) nodes (median of \(s.runs))")
    lines.append(Report.time("drover apply --auto-approve (whole process)", a["drover apply --auto-approve"]))
    lines.append(Report.time("drover apply --keepalive-interval 0 (no event loop)", a["drover apply, keepalive off"], note: Report.ratio(a["drover apply --auto-approve"], a["drover apply, keepalive off"], atMost: nil) + " (keepalive's cost)"))
    lines.append(Report.time("floor: C overlay volume + define + start loop, serial", a["floor: C define+start loop, serial"],
      note: Report.ratio(a["drover apply --auto-approve"], a["floor: C define+start loop, serial"], atMost: n == 1000 ? 0.8 : nil)))
    if n == 1000 {
      let ansible = try? ansibleCreate(s, domains: n)
      lines.append(Report.time("ansible virt define+start (fit of 10 and 30)", ansible,
        note: ansible == nil ? Peers.missingHint : Report.speedup(a["drover apply --auto-approve"], ansible, atLeast: nil)))
    }

    // 1. Plan, no changes.
    guard try runProcess(s.drover, ["plan", "--detailed-exitcode"], cwd: s.work, environment: s.env) == 0 else {
      throw BenchError("plan after apply is not a no-op at \(n) nodes")
    }
    let virshScript = "\(s.work)/virsh-\(n).txt"
    try writeVirshScript(s.holder, to: virshScript)
    let slow = big ? 2 : 3  // Ansible and kcli take seconds per run at this size
    var plan = Contest()
    plan.add("drover plan", runs: s.runs) { try check(runProcess(s.drover, ["plan", "--detailed-exitcode"], cwd: s.work, environment: s.env), "drover plan") }
    plan.add("drover plan, keepalive off", runs: s.runs) {
      try check(runProcess(s.drover, ["plan", "--detailed-exitcode", "--keepalive-interval", "0"], cwd: s.work, environment: s.env), "drover plan")
    }
    plan.add("floor: C", runs: s.runs) { try check(runProcess(s.floor, [uri, "observe-config", "drover-images"]), "libvirt-floor") }
    plan.add("floor: C metadata", runs: s.runs) { try check(runProcess(s.floor, [uri, "observe", OwnershipMetadata.namespace]), "libvirt-floor") }
    if let py = try? s.peers.pythonFloor(uri: uri, namespace: OwnershipMetadata.namespace) { plan.add("floor: python", runs: s.runs, py) }
    plan.add("virsh", runs: s.runs) { try check(runProcess(s.peers.virsh, ["-c", uri, "-q"], stdin: virshScript), "virsh") }
    if let kcli = try? s.peers.kcliList(uri: uri) { plan.add("kcli", runs: slow, kcli) }
    if let ansible = try? s.peers.ansible("ansible-info.yml", ["uri": uri]) { plan.add("ansible", runs: slow, ansible) }
    let p = plan.run()
    let d = p["drover plan"]
    lines.append("plan, no changes (median of \(s.runs); kcli and ansible \(slow))")
    lines.append(Report.time("drover plan (whole process)", d))
    lines.append(Report.time("drover plan --keepalive-interval 0 (no event loop)", p["drover plan, keepalive off"], note: Report.ratio(d, p["drover plan, keepalive off"], atMost: n == 1000 ? 1.1 : nil) + " (keepalive's cost)"))
    lines.append(Report.time("floor: C, list + persistent XML per domain + pool volumes, serial", p["floor: C"], note: Report.ratio(d, p["floor: C"], atMost: n == 1000 ? 1.0 : nil)))
    lines.append(Report.time("floor: C, list + metadata only (plan before day-2 convergence)", p["floor: C metadata"], note: Report.ratio(d, p["floor: C metadata"], atMost: nil)))
    lines.append(Report.time("floor: libvirt-python, list + metadata, serial", p["floor: python"], note: p["floor: python"] == nil ? Peers.missingHint : Report.ratio(d, p["floor: python"], atMost: nil)))
    lines.append(Report.time("virsh, one process, list + metadata each", p["virsh"], note: Report.speedup(d, p["virsh"], atLeast: nil)))
    lines.append(Report.time("kcli list vm", p["kcli"], note: p["kcli"] == nil ? Peers.missingHint : Report.speedup(d, p["kcli"], atLeast: n == 1000 ? 4 : nil)))
    lines.append(Report.time("ansible virt list_vms + info", p["ansible"], note: p["ansible"] == nil ? Peers.missingHint : Report.speedup(d, p["ansible"], atLeast: n == 1000 ? 40 : nil)))
    s.holder.calls.reset()
    _ = try s.holder.observe()
    let perNode = Double(s.holder.calls["config-xml"]) / Double(max(1, s.holder.calls.domainsListed))
    let constant = s.holder.calls.total - s.holder.calls["config-xml"]
    lines.append(String(format: "  libvirt calls: %.2f per node + %d in all   target ≤ 1 per node + a constant: %@", perNode, constant, perNode <= 1.0 ? "MET" : "MISSED"))
    lines.append(try capacityReads([s.holder] + [try? LibvirtHostBackend.connect("qemu:///system", keyring: Keyring(project: "bench", key: nil), readOnly: true, imagePool: "drover-images")].compactMap { $0 }))
    let planCPU = try medianCPU(s.drover, ["plan"], cwd: s.work, environment: s.env, runs: s.runs) / Double(n) * 1e6
    lines.append(String(format: "  client CPU of drover plan (user + system, whole process): %.0f µs per node   target ≤ 100 µs: %@", planCPU, planCPU <= 100 ? "MET" : "MISSED"))
    let rss = try runMeasured(s.drover, ["plan"], cwd: s.work, environment: s.env)
    lines.append("  peak memory of drover plan: \(rss / 1024) MB" + (big ? "   target < 100 MB: \(rss < 100 * 1024 ? "MET" : "MISSED")" : ""))

    // 3. Drift: read-only.
    let before = try worldSnapshot(s.holder)
    var drift = Contest()
    drift.add("drover drift", runs: s.runs) { _ = try runProcess(s.drover, ["drift", "--json"], cwd: s.work, environment: s.env) }
    drift.add("drover drift, keepalive off", runs: s.runs) {
      _ = try runProcess(s.drover, ["drift", "--json", "--keepalive-interval", "0"], cwd: s.work, environment: s.env)
    }
    drift.add("floor: C xml", runs: s.runs) { try check(runProcess(s.floor, [uri, "observe-xml"]), "libvirt-floor observe-xml") }
    drift.add("floor: C", runs: s.runs) { try check(runProcess(s.floor, [uri, "observe", OwnershipMetadata.namespace]), "libvirt-floor") }
    let r = drift.run()
    let driftCPU = try medianCPU(s.drover, ["drift", "--json"], cwd: s.work, environment: s.env, runs: s.runs) / Double(n) * 1e6
    let unchanged = try worldSnapshot(s.holder) == before
    s.holder.calls.reset()
    _ = try s.holder.observe(detailed: true)
    let writes = s.holder.calls.writes
    lines.append("drift, read-only (median of \(s.runs))")
    lines.append(Report.time("drover drift --json (whole process)", r["drover drift"]))
    lines.append(Report.time("drover drift --keepalive-interval 0 (no event loop)", r["drover drift, keepalive off"], note: Report.ratio(r["drover drift"], r["drover drift, keepalive off"], atMost: n == 1000 ? 1.1 : nil) + " (keepalive's cost)"))
    lines.append(Report.time("floor: C, the same XML reads, serial", r["floor: C xml"], note: Report.ratio(r["drover drift"], r["floor: C xml"], atMost: n == 1000 ? 1.0 : nil)))
    lines.append(Report.time("floor: C, list + metadata (plan's floor)", r["floor: C"], note: Report.ratio(r["drover drift"], r["floor: C"], atMost: nil)))
    lines.append(String(format: "  client CPU of drover drift (user + system, whole process): %.0f µs per node   target ≤ 100 µs: %@", driftCPU, driftCPU <= 100 ? "MET" : "MISSED"))
    lines.append(String(format: "  libvirt calls: %.2f reads per node; %d write calls; every domain unchanged after %d runs: %@   target 0 writes: %@",
      Double(s.holder.calls.total - 1) / Double(max(1, n)), writes, s.runs + 1, unchanged ? "yes" : "NO", writes == 0 && unchanged ? "MET" : "MISSED"))

    try s.project.writePool(name: pool, host: uri, replicas: 0)
    try check(runProcess(s.drover, ["apply", "--auto-approve"], cwd: s.work, environment: s.env), "drover apply (scale to 0)")
    return lines
  }

  /// Ansible's define+start playbook at 10 and 30 domains, extrapolated linearly to `domains`
  /// (a thousand loop items would take a quarter of an hour per run).
  static func ansibleCreate(_ s: Setup, domains: Int) throws -> Double {
    var t: [Int: Double] = [:]
    for k in [10, 30] {
      try removeDomains(s.holder, prefix: "ansible-")
      let body = try s.peers.ansible("ansible-create.yml", ["uri": uri, "prefix": "ansible", "count": "\(k)"])
      t[k] = try Stopwatch.seconds(body)
      guard try countDomains(s.holder, prefix: "ansible-") == k else { throw BenchError("ansible created the wrong number of domains") }
    }
    try removeDomains(s.holder, prefix: "ansible-")
    let perDomain = (t[30]! - t[10]!) / 20
    return t[10]! + perDomain * Double(domains - 10)
  }

  /// #19's budget: what one observe (plan's read) of each host spends on its CPUs, memory and
  /// pool space — node info on the test driver, the kernel's memory figures on a host that
  /// boots nodes (its CPUs from the capabilities read for the accelerator anyway).
  static func capacityReads(_ hosts: [LibvirtHostBackend]) throws -> String {
    var parts: [String] = []
    var worst = 0
    for host in hosts {
      host.calls.reset()
      _ = try host.observe(detailed: false)
      let n = host.calls["node-memory"] + host.calls["node-info"]
      worst = max(worst, n)
      parts.append("\(host.uri): \(n) (\(host.calls["node-memory"]) node-memory, \(host.calls["node-info"]) node-info)")
    }
    return "  capacity reads per host in plan: " + parts.joined(separator: "; ") + "   target ≤ 1 per host: " + (worst <= 1 ? "MET" : "MISSED")
  }

  static func check(_ status: Int32, _ what: String) throws {
    guard status == 0 else { throw BenchError("\(what) exited with \(status)") }
  }

  static func buildFloor(_ work: String, repo: String) throws -> String {
    let source = repo + "/benchmarks/libvirt-floor.c"
    let binary = work + "/libvirt-floor"
    let status = try runProcess("/bin/sh", ["-c", "cc -O2 -o '\(binary)' '\(source)' $(pkg-config --cflags --libs libvirt)"])
    guard status == 0 else { throw BenchError("cannot build \(source) (run from the repository)") }
    return binary
  }

  /// One virsh process: list, then one metadata read per domain (virsh's shell mode).
  static func writeVirshScript(_ holder: LibvirtHostBackend, to path: String) throws {
    var text = "list --all --name\n"
    for d in try holder.connection.allDomains() { text += "metadata \(d.name) \(OwnershipMetadata.namespace)\n" }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// Every domain's name, state and full XML digest: equal before and after means nothing changed.
  static func worldSnapshot(_ holder: LibvirtHostBackend) throws -> [String: String] {
    var snapshot: [String: String] = [:]
    for (domain, state) in try holder.connection.allDomainsWithState() {
      snapshot[domain.name] = "\(state) \(ContentDigest.of(try domain.xml(inactive: true)).hex)"
    }
    return snapshot
  }

  static func countDomains(_ holder: LibvirtHostBackend, prefix: String) throws -> Int {
    try holder.connection.allDomains().filter { $0.name.hasPrefix(prefix) }.count
  }

  /// Removes the domains named `prefix…` and their overlay volumes (Drover's and the floor's).
  static func removeDomains(_ holder: LibvirtHostBackend, prefix: String) throws {
    for d in try holder.connection.allDomains() where d.name.hasPrefix(prefix) {
      try? d.destroy()
      try? d.undefine()
    }
    if let pool = try holder.connection.storagePool(named: "drover-images") {
      for name in try pool.volumeNames() where name.hasPrefix(prefix) || name.contains("." + prefix) {
        try? pool.volume(named: name)?.delete()
      }
    }
  }
}
