import DroverBasics
import DroverBake
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Libvirt

/// Scenario 6: a rolling replace of 3 real TCG VMs (`drover apply` after an image change: surge
/// node, console health check, cordon/drain hook, delete the old node — one node at a time),
/// against the sum of raw boot-to-ready times measured in the same run (libvirt define + start
/// of the same domain on a fresh overlay, until the same ready line is on its console).
///
/// Drover's overhead per node = (rollout time − Σ raw boot-to-ready) / nodes. Target < 0.5 s.
enum RollingBenchmark {
  static let nodes = 3

  static func run(drover: String, repo: String) throws -> [String] {
    let id = "\(getpid())"
    let dir = "/var/lib/drover/bench-rolling-\(id)", pool = "drover-bench-rolling-\(id)"
    let project = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-rolling-\(id)").path
    try? FileManager.default.removeItem(atPath: project)
    try FileManager.default.createDirectory(atPath: project + "/pools", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: project + "/images", withIntermediateDirectories: true)
    try "project: bench-rolling-\(id)\nstate: {backend: local, dir: .drover}\n".write(toFile: project + "/drover.yaml", atomically: true, encoding: .utf8)
    for file in ["files", "demo-v1.yaml", "demo-v2.yaml"] {
      try FileManager.default.copyItem(atPath: "\(repo)/images/\(file)", toPath: "\(project)/images/\(file)")
    }
    let env = [
      "DROVER_IMAGE_DIR": dir, "DROVER_IMAGE_POOL": pool, "DROVER_CONSOLE_DIR": dir + "/console", "DROVER_PROJECT": "bench-rolling-\(id)",
    ]
    let backend = try LibvirtHostBackend.connect("qemu:///system", keyring: Keyring(project: "bench", key: nil), timeout: 60)
    func spec(_ image: String, replicas: Int = nodes) throws {
      try """
        name: roll\(id)
        hosts: [qemu:///system]
        replicas: \(replicas)
        image: \(image)
        resources: {vcpu: 1, memory: 256MiB, disk: 1GiB}
        network: none
        health:
          - {type: console, pattern: "DROVER READY v[0-9]+", timeout: 60s, interval: 50ms, retries: 1}
        drain: {type: command, cordon: [/bin/true], uncordon: [/bin/true], timeout: 30s}
        upgrade: {canary: 1, waves: [100%], max_surge: 1, max_unavailable: 0, soak: 0s, health_timeout: 60s}
        error_budget: 0

        """.write(toFile: project + "/pools/roll.yaml", atomically: true, encoding: .utf8)
    }
    func runDrover(_ args: [String]) throws {
      try FleetBenchmark.check(runProcess(drover, args, cwd: project, environment: env), "drover \(args.joined(separator: " "))")
    }
    defer {
      try? spec("demo@v1", replicas: 0)
      try? runDrover(["apply", "--auto-approve"])
      if let p = try? backend.connection.storagePool(named: pool) {
        try? p.stop()
        try? p.undefine()
      }
      try? FileManager.default.removeItem(atPath: dir)
      try? FileManager.default.removeItem(atPath: project)
    }
    try spec("demo@v1")
    try runDrover(["bake"])
    try runDrover(["apply", "--auto-approve"])

    // Five rollouts, v1 → v2 → v1 → v2 → v1 → v2, each timed as a whole process.
    var rollouts: [Double] = []
    for image in ["demo@v2", "demo@v1", "demo@v2", "demo@v1", "demo@v2"] {
      try spec(image)
      rollouts.append(try Stopwatch.seconds { try runDrover(["apply", "--auto-approve"]) })
    }

    // Raw boot-to-ready of the same node shape, one VM at a time, while nothing else runs.
    let catalogue = ImageCatalogue(directory: dir)
    let images = NodeImages(catalogue: catalogue, poolName: pool, consoleDirectory: dir + "/console")
    var spec2 = PoolSpec(name: "rawboot\(id)", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v2")!)
    spec2.network = nil
    var boots: [Double] = []
    for i in 1...nodes * 2 {
      let digest = catalogue.image(for: ImageRef(parsing: "demo@v2")!)?.key ?? ""
      let node = try images.prepare(NodeDefinition(ownership: desiredOwnership(spec2, index: i, digest: digest, generation: 1, project: "bench-raw")), host: backend)
      let xml = DomainXML.renderLegacy(node, bootsNodes: backend.bootsNodes)
      let console = try require(node.boot?.consoleLog)
      try? FileManager.default.removeItem(atPath: console)
      let t = try Stopwatch.seconds {
        let domain = try backend.connection.defineDomain(xml: xml)
        try domain.start()
        try waitForReady(console, deadline: Date().addingTimeInterval(60))
      }
      boots.append(t)
      if let d = try backend.connection.domain(named: node.name) {
        try? d.destroy()
        try? d.undefine()
      }
      try? backend.deleteVolume(pool: pool, name: node.boot!.volume)
    }
    let rollout = median(rollouts), boot = median(boots)
    let overhead = (rollout - Double(nodes) * boot) / Double(nodes)
    return [
      "rolling replace of \(nodes) real TCG VMs, one at a time with a surge node (median of \(rollouts.count) rollouts)",
      Report.time("drover apply (image change → rollout)", rollout),
      Report.time("raw boot-to-ready, define+start → ready line", boot, note: "median of \(boots.count) boots; × \(nodes) = \(Stopwatch.format(boot * Double(nodes)))"),
      String(format: "  drover's overhead per node beyond boot and health: %.2f s   target < 0.5 s: %@", overhead, overhead < 0.5 ? "MET" : "MISSED"),
    ]
  }

  /// Polls a console log for the ready line the demo image prints.
  static func waitForReady(_ path: String, deadline: Date) throws {
    while Date() < deadline {
      if let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("DROVER READY v") { return }
      usleep(25_000)
    }
    throw BenchError("no ready line on \(path) within 60 s")
  }
}
