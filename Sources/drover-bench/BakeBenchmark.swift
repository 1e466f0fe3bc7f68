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
    let backend = try LibvirtHostBackend.connect("qemu:///system", timeout: 60)
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
    var totals: [Double] = []
    let coldRuns = max(1, min(runs, 3))
    for i in 0..<coldRuns {
      // A new input each time forces a real rebuild.
      try "v1 run \(i)\n".write(toFile: project + "/images/files/version-v1", atomically: true, encoding: .utf8)
      let baker = Baker(imageDirectory: dir, poolName: pool, host: backend, stateDirectory: project + "/.drover")
      let recipe = try loadRecipe(project + "/images/demo-v1.yaml")
      let t = try Stopwatch.seconds { _ = try baker.bake(recipe, recipeDirectory: project + "/images") }
      totals.append(t)
      let m = try require(ImageCatalogue(directory: dir).manifests.max { $0.created < $1.created })
      for (k, v) in m.timings where k != "total" { steps[k, default: []].append(v) }
    }
    lines.append("cold bake (median of \(coldRuns), build VM boot included)   \(Stopwatch.format(median(totals)))")
    for name in ["key", "initramfs", "filesystem", "commands", "convert", "checksum"] {
      if let s = steps[name] { lines.append("  step \(name.padding(toLength: 11, withPad: " ", startingAt: 0))  \(Stopwatch.format(median(s)))") }
    }
    let hit = try Stopwatch.median(runs: runs) { try runProcess(drover, ["bake", "demo@v1"], cwd: project, environment: environment) }
    let startup = try Stopwatch.median(runs: runs) { try runProcess(drover, ["--version"], cwd: project) }
    lines.append("cache-hit bake, whole process                 \(Stopwatch.format(hit))   target < 50 ms: \(hit < 0.05 ? "MET" : "MISSED")  (process start-up alone \(Stopwatch.format(startup)))")

    let catalogue = ImageCatalogue(directory: dir)
    let images = NodeImages(catalogue: catalogue, poolName: pool, consoleDirectory: dir + "/console")
    let spec = PoolSpec(name: "bench", hosts: ["qemu:///system"], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
    var overlay: [Double] = []
    for i in 1...runs {
      let node = NodeDefinition(ownership: desiredOwnership(spec, index: i, digest: "", generation: 1, project: "bench"))
      overlay.append(try Stopwatch.seconds { _ = try images.prepare(node, host: backend) })
      try backend.deleteVolume(pool: pool, name: NodeImages.overlayName("bench-\(i)", generation: 1))
    }
    overlay.removeFirst()  // the first one also verifies the image checksum
    lines.append("overlay creation per node (libvirt volume)    \(Stopwatch.format(median(overlay)))")
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
