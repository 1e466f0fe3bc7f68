import DroverBasics
import DroverBake
import DroverLibvirt
import DroverModel
import DroverPlan
import DroverSpec
import Foundation

/// Scenario 5 (Drover's side): a cold bake split by step, a whole-process cache-hit bake, and
/// per-node overlay creation. Targets: cache hit < 50 ms with no VM boot.
enum BakeBenchmark {
  static func run(drover: String, runs: Int, repo: String) throws -> [String] {
    let id = "\(getpid())"
    let dir = "/var/lib/drover/bench-images-\(id)", pool = "drover-bench-\(id)"
    let project = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-bake-\(id)").path
    try? FileManager.default.removeItem(atPath: project)
    try FileManager.default.createDirectory(atPath: project + "/images", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: repo + "/images/files", toPath: project + "/images/files")
    try FileManager.default.copyItem(atPath: repo + "/images/demo-v1.yaml", toPath: project + "/images/demo-v1.yaml")
    let backend = try LibvirtHostBackend.connect("qemu:///system", keyring: Keyring(project: "bench", key: nil), timeout: 60)
    defer {
      if let p = try? backend.connection.storagePool(named: pool) {
        try? p.stop()
        try? p.undefine()
      }
      try? FileManager.default.removeItem(atPath: dir)
      try? FileManager.default.removeItem(atPath: project)
    }
    let environment = ["DROVER_IMAGE_DIR": dir, "DROVER_IMAGE_POOL": pool]
    var lines: [String] = []
    var steps: [String: [Double]] = [:]
    var initrd = ""
    var bakeRound = 0
    // Cold bakes: a new input each time forces a real rebuild. Interleaved with the raw steps
    // and Packer doing the same work on the same kernel, build initramfs and root filesystem.
    func bakeWithDrover() throws {
      bakeRound += 1
      try "v1 run \(bakeRound)\n".write(toFile: project + "/images/files/version-v1", atomically: true, encoding: .utf8)
      let baker = Baker(imageDirectory: dir, poolName: pool, host: backend, stateDirectory: project + "/.drover")
      _ = try baker.bake(try loadRecipe(project + "/images/demo-v1.yaml"), recipeDirectory: project + "/images")
      let m = try require(ImageCatalogue(directory: dir).manifests.max { $0.created < $1.created })
      for (k, v) in m.timings where k != "total" { steps[k, default: []].append(v) }
      initrd = m.initrd
    }
    let coldRuns = runs
    let stage = project + "/baseline"
    var contest = Contest()
    contest.add("drover", runs: coldRuns, bakeWithDrover)  // first: its warm-up makes the build initramfs the baselines reuse
    contest.add("raw", runs: coldRuns) {
      try? FileManager.default.removeItem(atPath: stage)
      try FleetBenchmark.check(runProcess("/bin/sh", [repo + "/benchmarks/raw-bake.sh", repo + "/images", "/vmlinuz", initrd, stage]), "raw-bake.sh")
    }
    let packer = Peers(repo: repo, work: project).packer
    if packer != nil {
      contest.add("packer", runs: coldRuns) {
        try? FileManager.default.removeItem(atPath: stage)
        try FleetBenchmark.check(runProcess("/bin/sh", [repo + "/benchmarks/packer-bake.sh", repo + "/images", "/vmlinuz", initrd, stage]), "packer-bake.sh")
      }
    }
    let cold = contest.run()
    lines.append("cold bake of demo@v1 (median of \(coldRuns); build VM boot included)")
    lines.append(Report.time("drover bake (Baker, in-process)", cold["drover"]))
    for name in ["key", "initramfs", "filesystem", "commands", "convert", "checksum"] {
      if let s = steps[name] { lines.append(Report.time("  step \(name)", median(s))) }
    }
    lines.append(Report.time("raw steps by script (benchmarks/raw-bake.sh)", cold["raw"], note: Report.ratio(cold["drover"], cold["raw"], atMost: nil)))
    lines.append(Report.time("packer build, QEMU builder (same recipe)", cold["packer"], note: packer == nil ? Peers.missingHint : Report.ratio(cold["drover"], cold["packer"], atMost: 1.05)))
    let hit = try Stopwatch.median(runs: runs) { try runProcess(drover, ["bake", "demo@v1"], cwd: project, environment: environment) }
    let startup = try Stopwatch.median(runs: runs) { try runProcess(drover, ["--version"], cwd: project) }
    lines.append("cache hit (same inputs, median of \(runs))")
    lines.append(Report.time("drover bake demo@v1 (whole process, no VM)", hit, note: "target < 50 ms: \(hit < 0.05 ? "MET" : "MISSED")   (process start-up alone \(Stopwatch.format(startup)))"))
    lines.append(Report.time("packer build (no cache: rebuilds every time)", cold["packer"], note: packer == nil ? "" : Report.speedup(hit, cold["packer"], atLeast: 100)))

    let catalogue = ImageCatalogue(directory: dir)
    let images = NodeImages(catalogue: catalogue, poolName: pool, consoleDirectory: dir + "/console")
    let spec = PoolSpec(name: "bench", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
    var overlay: [Double] = []
    for i in 1...runs {
      let node = NodeDefinition(ownership: desiredOwnership(spec, index: i, digest: "", generation: 1, project: "bench"))
      overlay.append(try Stopwatch.seconds { _ = try images.prepare(node, host: backend) })
      try backend.deleteVolume(pool: pool, name: OverlayName(project: "bench", pool: "bench", index: i, generation: 1).volume)
    }
    overlay.removeFirst()  // the first one also verifies the image checksum
    lines.append(Report.time("overlay creation per node (libvirt volume)", median(overlay)))
    return lines
  }

  static func loadRecipe(_ path: String) throws -> ImageRecipe {
    let (sources, _) = SpecFiles.read([path])
    let (set, diagnostics) = SpecLoader.load(sources)
    guard let recipe = set.recipes.first?.recipe, diagnostics.isEmpty else { throw BenchError("cannot load \(path)") }
    return recipe
  }
}

struct BenchError: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}

func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }

func require<T>(_ value: T?) throws -> T {
  guard let value else { throw BenchError("missing value") }
  return value
}
