import DroverBasics
import DroverLibvirt
import DroverModel
import Foundation
import Libvirt

/// Scenario 1, in-process variant: the same no-op plan against libvirt's test driver loaded
/// in-process from a file (`test:///path/world.xml`), so no daemon round trips at all — what is
/// left is each program's own start-up, parsing and per-domain work.
///
/// The world file holds `n` domains Drover created (with their ownership records), dumped from
/// `test+unix:///default` after a real `drover apply`.
enum InProcessBenchmark {
  static func run(drover: String, runs: Int, sizes: [Int], repo: String) throws -> [String] {
    let project = try ScratchProject("inprocess")
    defer { project.remove() }
    let work = project.path
    let holder = try LibvirtHostBackend.connect(FleetBenchmark.uri, keyring: Keyring(project: "bench", key: nil))
    let peers = Peers(repo: repo, work: work)
    let floor = try FleetBenchmark.buildFloor(work, repo: repo)
    let env = ["DROVER_PROJECT": FleetBenchmark.project]
    var lines: [String] = []
    for n in sizes {
      let pool = "local\(n)"
      let file = "\(work)/world-\(n).xml"
      // Make the nodes for real over the daemon, then dump them into a test-driver world file.
      func spec(_ host: String, _ replicas: Int) throws { try project.writePool(name: pool, host: host, replicas: replicas) }
      try spec(FleetBenchmark.uri, n)
      try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply")
      var world = "<node>\n"
      for d in try holder.connection.allDomains() where d.name.hasPrefix(pool + "-") { world += try d.xml(inactive: true) + "\n" }
      try (world + "</node>\n").write(toFile: file, atomically: true, encoding: .utf8)
      try spec(FleetBenchmark.uri, 0)
      try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env), "drover apply (scale to 0)")

      let uri = "test://" + file
      // The daemon's apply remembered its host; the in-process plan must not read it too.
      try? FileManager.default.removeItem(atPath: "\(work)/.drover/hosts.\(FleetBenchmark.project)")
      try spec(uri, n)
      let noop = try runProcess(drover, ["plan", "--detailed-exitcode"], cwd: work, environment: env)
      guard noop == 0 else { throw BenchError("plan against \(uri) is not a no-op (exit \(noop))") }
      let script = "\(work)/virsh-\(n).txt"
      var text = "list --all --name\n"
      for i in 1...n { text += "metadata \(NodeName.of(pool: pool, index: i)) \(OwnershipMetadata.namespace)\n" }
      try text.write(toFile: script, atomically: true, encoding: .utf8)

      var contest = Contest()
      contest.add("drover", runs: runs) { try FleetBenchmark.check(runProcess(drover, ["plan", "--detailed-exitcode"], cwd: work, environment: env), "drover plan") }
      contest.add("floor: C", runs: runs) { try FleetBenchmark.check(runProcess(floor, [uri, "observe", OwnershipMetadata.namespace]), "libvirt-floor") }
      if let py = try? peers.pythonFloor(uri: uri, namespace: OwnershipMetadata.namespace) { contest.add("floor: python", runs: runs, py) }
      contest.add("virsh", runs: runs) { try FleetBenchmark.check(runProcess(peers.virsh, ["-c", uri, "-q"], stdin: script), "virsh") }
      let r = contest.run()
      let d = r["drover"]
      lines.append("")
      lines.append("-- \(n) nodes, test driver in-process (test:///…/world-\(n).xml), plan with no changes (median of \(runs))")
      lines.append(Report.time("drover plan (whole process)", d))
      lines.append(Report.time("floor: C, list + metadata per domain", r["floor: C"], note: Report.ratio(d, r["floor: C"], atMost: nil)))
      lines.append(Report.time("floor: libvirt-python, same reads", r["floor: python"], note: r["floor: python"] == nil ? Peers.missingHint : Report.ratio(d, r["floor: python"], atMost: nil)))
      lines.append(Report.time("virsh, one process", r["virsh"], note: Report.speedup(d, r["virsh"], atLeast: nil)))
    }
    lines.append("  (in-process there is no daemon to overlap with: every program parses the same world file first)")
    return lines
  }
}
