import DroverBasics
import DroverLibvirt
import DroverModel
import Foundation
import Libvirt

/// `hosts`: `plan` over two libvirt hosts with `n` nodes each (default 500) against `plan` of
/// each host alone, in the same run — the cost of a second host must be the slower host's, not
/// the sum (target ≤ 1.2× the slower host alone).
///
/// Two real daemons, each with its own test-driver world: the machine's libvirtd over
/// `test+unix:///default`, and the TLS host of `scripts/tls-host` over
/// `test+tls://127.0.0.1:16515/default`, its CA and client certificate from the machine's
/// configuration as a user would set them. The nodes are made by a real `drover apply`; the
/// three projects share its key and journal, so each plan is a no-op that verifies every record.
/// `DROVER_BENCH_HOSTS_NODES` sets `n`.
enum HostsBenchmark {
  static let near = "test+unix:///default"
  static let far = "test+tls://127.0.0.1:16515/default"
  static let pkipath = "/var/lib/drover/tls-host/client"
  static let project = "bench2h"

  static func run(drover: String, runs: Int, repo: String) throws -> [String] {
    let n = Int(ProcessInfo.processInfo.environment["DROVER_BENCH_HOSTS_NODES"] ?? "") ?? 500
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-hosts-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    // The test driver keeps a world only while a client is connected: these hold both.
    let keyring = Keyring(project: "bench", key: nil)
    let a = try LibvirtHostBackend.connect(near, keyring: keyring, imagePool: "drover-images")
    let b = try LibvirtHostBackend.connect(far + "?pkipath=" + pkipath, keyring: keyring, imagePool: "drover-images")
    for holder in [a, b] {
      try holder.ensureImagePool(name: "drover-images", directory: "/var/lib/drover/images")
    }
    defer {
      try? FleetBenchmark.removeDomains(a, prefix: "pa-")
      try? FleetBenchmark.removeDomains(b, prefix: "pb-")
    }
    try FleetBenchmark.removeDomains(a, prefix: "pa-")
    try FleetBenchmark.removeDomains(b, prefix: "pb-")

    // Three projects of one name: both pools, pool pa (host a) alone, pool pb (host b) alone.
    let variants = ["both": ["pa", "pb"], "a": ["pa"], "b": ["pb"]]
    for (variant, pools) in variants {
      let dir = "\(root)/\(variant)"
      try FileManager.default.createDirectory(atPath: dir + "/pools", withIntermediateDirectories: true)
      try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
      try "name: demo\nversion: v1\nbase: {rootfs: busybox}\n".write(toFile: dir + "/images/demo.yaml", atomically: true, encoding: .utf8)
      try """
        project: \(project)
        state: {backend: local, dir: .drover}
        hosts:
          - {name: a, uri: "\(near)"}
          - {name: b, uri: "\(far)"}

        """.write(toFile: dir + "/drover.yaml", atomically: true, encoding: .utf8)
      for pool in pools {
        try "name: \(pool)\nhosts: [\(pool == "pa" ? "a" : "b")]\nreplicas: \(n)\nimage: demo@v1\n".write(
          toFile: "\(dir)/pools/\(pool).yaml", atomically: true, encoding: .utf8)
      }
    }
    let config = "\(root)/machine-config.yaml"
    try "hosts:\n  b: {pkipath: \(pkipath)}\n".write(toFile: config, atomically: true, encoding: .utf8)
    chmod(config, 0o644)
    let env = ["DROVER_CONFIG": config, "NO_COLOR": "1"]

    try FleetBenchmark.check(runProcess(drover, ["apply", "--auto-approve"], cwd: "\(root)/both", environment: env), "drover apply (both hosts)")
    // One key and journal for all three; each alone-project reads only its own host.
    for variant in ["a", "b"] {
      try FleetBenchmark.check(runProcess("/bin/cp", ["-a", "\(root)/both/.drover", "\(root)/\(variant)/"]), "copying the state")
      try? FileManager.default.removeItem(atPath: "\(root)/\(variant)/.drover/hosts.\(project)")
    }
    for variant in ["both", "a", "b"] {
      let noop = try runProcess(drover, ["plan", "--detailed-exitcode"], cwd: "\(root)/\(variant)", environment: env)
      guard noop == 0 else { throw BenchError("plan (\(variant)) is not a no-op (exit \(noop))") }
    }
    let floor = try FleetBenchmark.buildFloor(root, repo: repo)
    let ns = OwnershipMetadata.namespace

    var contest = Contest()
    for variant in ["both", "a", "b"] {
      contest.add(variant, runs: runs) {
        try FleetBenchmark.check(runProcess(drover, ["plan", "--detailed-exitcode"], cwd: "\(root)/\(variant)", environment: env), "drover plan (\(variant))")
      }
    }
    // The machine's own limit: both single-host plans at once, as two processes. Here both
    // daemons and Drover share 2 cores, so reading 1,000 domains cannot take the time of 500
    // once the CPUs are busy; separate hosts do not share their daemons' CPU.
    contest.add("a | b", runs: runs) {
      let pids = try ["a", "b"].map { variant in
        try startProcess(drover, ["plan", "--detailed-exitcode"], cwd: "\(root)/\(variant)", environment: env)
      }
      for pid in pids { try FleetBenchmark.check(awaitProcess(pid).status, "drover plan (a | b)") }
    }
    contest.add("floor a", runs: runs) { try FleetBenchmark.check(runProcess(floor, [near, "observe", ns]), "libvirt-floor a") }
    contest.add("floor b", runs: runs) { try FleetBenchmark.check(runProcess(floor, [far + "?pkipath=" + pkipath, "observe", ns]), "libvirt-floor b") }
    let r = contest.run()
    let slower = [r["a"], r["b"]].compactMap { $0 }.max()
    return [
      "-- plan with no changes, \(n) nodes on each of 2 hosts (median of \(runs)): a = \(near), b = \(far) (TLS, the machine's CA)",
      Report.time("drover plan, both hosts (\(2 * n) nodes)", r["both"], note: Report.ratio(r["both"], slower, atMost: 1.2) + " (this = the slower host alone)"),
      Report.time("drover plan, host a alone (\(n) nodes)", r["a"]),
      Report.time("drover plan, host b alone (\(n) nodes)", r["b"]),
      Report.time("a and b alone at once, two processes", r["a | b"], note: Report.ratio(r["both"], r["a | b"], atMost: 1.05) + " (the machine's limit)"),
      Report.time("floor: C, list + metadata per domain, a", r["floor a"], note: Report.ratio(r["a"], r["floor a"], atMost: nil)),
      Report.time("floor: C, list + metadata per domain, b", r["floor b"], note: Report.ratio(r["b"], r["floor b"], atMost: nil)),
      try FleetBenchmark.capacityReads([a, b]),
    ]
  }
}
