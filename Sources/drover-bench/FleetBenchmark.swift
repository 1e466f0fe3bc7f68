import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt

/// Scenarios 1–3: plan (no changes), drift and apply at fleet scale on libvirtd's test driver
/// (`test+unix:///default`), each against the C floor and `virsh` measured in the same run.
///
/// The test driver keeps its state only while a client is connected, so this process holds a
/// connection for the whole benchmark; every other program sees the same inventory through it.
enum FleetBenchmark {
  static let uri = "test+unix:///default"

  static func run(drover: String, runs: Int, sizes: [Int]) throws -> [String] {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-fleet-\(getpid())").path
    try? FileManager.default.removeItem(atPath: work)
    try FileManager.default.createDirectory(atPath: work + "/pools", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: work + "/images", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    try "name: demo\nversion: v1\nbase: {rootfs: busybox}\n".write(toFile: work + "/images/demo.yaml", atomically: true, encoding: .utf8)
    let floor = try buildFloor(work)
    let holder = try LibvirtHostBackend.connect(uri)
    let env = ["DROVER_PROJECT": "bench"]
    var lines: [String] = []
    lines.append("size   scenario               drover      C floor     virsh(1 proc)  drover/floor  drover/virsh  calls/node  max RSS")
    for n in sizes {
      let pool = "fleet\(n)"
      try "name: \(pool)\nhosts: [\(uri)]\nreplicas: \(n)\nimage: demo@v1\n".write(toFile: "\(work)/pools/p.yaml", atomically: true, encoding: .utf8)
      // Apply create: drover vs a serial define+start loop in C.
      let applyTime = try Stopwatch.seconds { _ = try runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env) }
      let floorCreate = try Stopwatch.seconds { _ = try runProcess(floor, [uri, "create", "floor\(n)", "\(n)"]) }
      try removeDomains(holder, prefix: "floor\(n)-")
      lines.append(row(n, "apply create", applyTime, floorCreate, nil, calls: nil, rss: nil))

      // Plan with no changes (whole process) vs list + metadata per domain.
      var rss = 0
      let plan = try Stopwatch.median(runs: runs) { rss = max(rss, try runMeasured(drover, ["plan", "--detailed-exitcode"], cwd: work, environment: env)) }
      let floorObserve = try Stopwatch.median(runs: runs) { _ = try runProcess(floor, [uri, "observe", OwnershipMetadata.namespace]) }
      let script = "\(work)/virsh-\(n).txt"
      try writeVirshScript(holder, to: script)
      let virsh = try Stopwatch.median(runs: runs) { _ = try runProcess("/usr/bin/virsh", ["-c", uri, "-q"], stdin: script) }
      holder.calls.reset()
      _ = try holder.observe()
      let perNode = Double(holder.calls.total) / Double(max(1, holder.calls.domainsListed))
      lines.append(row(n, "plan, no changes", plan, floorObserve, virsh, calls: perNode, rss: rss))
      let drift = try Stopwatch.median(runs: runs) { _ = try runProcess(drover, ["drift", "--json"], cwd: work, environment: env) }
      lines.append(row(n, "drift (0 writes)", drift, floorObserve, virsh, calls: nil, rss: nil))

      try "name: \(pool)\nhosts: [\(uri)]\nreplicas: 0\nimage: demo@v1\n".write(toFile: "\(work)/pools/p.yaml", atomically: true, encoding: .utf8)
      _ = try runProcess(drover, ["apply", "--auto-approve"], cwd: work, environment: env)
    }
    lines.append("targets at 1,000: plan ≤ 1.0× floor, apply ≤ 1.0× floor, drift ≤ 1.0× floor; memory at 5,000 < 100 MB")
    return lines
  }

  static func row(_ n: Int, _ what: String, _ d: Double, _ floor: Double, _ virsh: Double?, calls: Double?, rss: Int?) -> String {
    func f(_ s: Double?) -> String { (s.map(Stopwatch.format) ?? "-").padding(toLength: 12, withPad: " ", startingAt: 0) }
    let ratio = String(format: "%.2f×", d / floor).padding(toLength: 14, withPad: " ", startingAt: 0)
    let vr = (virsh.map { String(format: "%.2f×", d / $0) } ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0)
    let met = d <= floor ? "MET" : "missed"
    return "\(String(n).padding(toLength: 7, withPad: " ", startingAt: 0))\(what.padding(toLength: 23, withPad: " ", startingAt: 0))\(f(d))\(f(floor))\(f(virsh).padding(toLength: 15, withPad: " ", startingAt: 0))\(ratio)\(vr)\((calls.map { String(format: "%.2f", $0) } ?? "-").padding(toLength: 12, withPad: " ", startingAt: 0))\(rss.map { "\($0 / 1024) MB" } ?? "")  [\(met)]"
  }

  static func buildFloor(_ work: String) throws -> String {
    let source = FileManager.default.currentDirectoryPath + "/benchmarks/libvirt-floor.c"
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

  static func removeDomains(_ holder: LibvirtHostBackend, prefix: String) throws {
    for d in try holder.connection.allDomains() where d.name.hasPrefix(prefix) {
      try? d.destroy()
      try? d.undefine()
    }
  }
}
