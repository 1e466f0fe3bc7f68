import DroverBake
import DroverModel
import Foundation

/// #18's bake targets on a Debian image from packages (the shipped example's package set):
/// a cold bake against the raw steps by hand on the same packages and mirrors (`mmdebstrap`
/// into a folder, the file copied in, `mkfs.ext4 -d`, `qemu-img convert`, `sha256sum`) ≤ 1.05×;
/// a rebuild after one file changed ≤ 0.2× of a cold bake (the package layer reused); a cache
/// hit < 50 ms. Debian's own image builders cannot run here (mkosi needs systemd-nspawn, vmdb2
/// device-mapper), so the raw steps are the baseline. Slow: each cold run is a full mmdebstrap
/// (~2 minutes); `DROVER_BENCH_COLD_RUNS` (default 1) sets how many of each, interleaved.
enum DebianBakeBenchmark {
  static let packages = ["systemd-sysv", "linux-image-amd64", "openssh-server", "cloud-init", "qemu-guest-agent", "ifupdown"]

  static func run(drover: String, runs: Int, repo: String) throws -> [String] {
    let id = "\(getpid())"
    let dir = "/var/lib/drover/bench-debian-\(id)", pool = "drover-bench-debian-\(id)"
    let project = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-debian-\(id)").path
    let stage = project + "/raw"
    try? FileManager.default.removeItem(atPath: project)
    try FileManager.default.createDirectory(atPath: project + "/images/files", withIntermediateDirectories: true)
    /// No image folder, no layer, no pool: the next bake is cold.
    func forgetImages() {
      _ = try? runProcess("/usr/bin/virsh", ["-q", "-c", "qemu:///system", "pool-destroy", pool])
      _ = try? runProcess("/usr/bin/virsh", ["-q", "-c", "qemu:///system", "pool-undefine", pool])
      try? FileManager.default.removeItem(atPath: dir)
    }
    defer {
      forgetImages()
      try? FileManager.default.removeItem(atPath: project)
    }
    let environment = ["DROVER_IMAGE_DIR": dir, "DROVER_IMAGE_POOL": pool]
    try "name: deb\nversion: v1\nbase: {debian: bookworm, packages: [\(packages.joined(separator: ", "))]}\nfiles: [{source: files/motd, path: /etc/motd}]\n"
      .write(toFile: project + "/images/deb-v1.yaml", atomically: true, encoding: .utf8)
    var round = 0
    func changeFile() throws {
      round += 1
      try "Drover bench, round \(round)\n".write(toFile: project + "/images/files/motd", atomically: true, encoding: .utf8)
    }
    func bake() throws {
      let log = project + "/bake.log"
      let status = try runProcess("/bin/sh", ["-c", "exec \"$0\" bake deb@v1 > \"$1\" 2>&1", drover, log], cwd: project, environment: environment)
      guard status == 0 else {
        throw BenchError("drover bake deb@v1 exited \(status): \(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(600))")
      }
    }
    // The same mmdebstrap command Drover runs (packages, variant, components, the machine's
    // mirrors), writing a folder instead of a tar: the fastest way by hand.
    let base = ImageRecipe.DebianBase(suite: "bookworm", packages: packages.sorted())
    let machine = DebianLayer.MachineApt.current(digests: FileDigestCache(stateDirectory: project + "/.drover"))
    let mmdebstrap = DebianLayer.command(base, target: stage + "/root", machine: machine).map { $0 == "--format=tar" ? "--format=directory" : $0 }
    func raw() throws {
      try? FileManager.default.removeItem(atPath: stage)
      try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true)
      try step(mmdebstrap)
      try FileManager.default.copyItem(atPath: project + "/images/files/motd", toPath: stage + "/root/etc/motd.new")
      _ = rename(stage + "/root/etc/motd.new", stage + "/root/etc/motd")
      try step(["/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "drover", "-d", stage + "/root", stage + "/disk.raw", "2048M"])
      try step(["/usr/bin/qemu-img", "convert", "-f", "raw", "-O", "qcow2", stage + "/disk.raw", stage + "/deb.qcow2"])
      try step(["/bin/sh", "-c", "sha256sum '\(stage)/deb.qcow2' > '\(stage)/deb.qcow2.sha256'"])
    }
    let coldRuns = max(1, Int(ProcessInfo.processInfo.environment["DROVER_BENCH_COLD_RUNS"] ?? "") ?? 1)
    var drov: [Double] = [], rawTimes: [Double] = []
    for _ in 0..<coldRuns {
      forgetImages()
      try changeFile()
      drov.append(try Stopwatch.seconds(bake))
      rawTimes.append(try Stopwatch.seconds(raw))
    }
    try? FileManager.default.removeItem(atPath: stage)
    var rebuilds: [Double] = []
    for _ in 0..<min(runs, 3) {
      try changeFile()
      rebuilds.append(try Stopwatch.seconds(bake))
    }
    let hit = try Stopwatch.median(runs: runs) { try bake() }
    let cold = median(drov), rawCold = median(rawTimes), rebuild = median(rebuilds)
    return [
      "Debian bookworm from \(packages.count) packages (\(packages.joined(separator: ", "))), cold median of \(coldRuns)",
      Report.time("drover bake, cold (no layer)", cold, note: Report.ratio(cold, rawCold, atMost: 1.05)),
      Report.time("raw steps by hand (mmdebstrap, mkfs.ext4 -d, qemu-img)", rawCold),
      Report.time("drover bake after one file changed", rebuild, note: String(format: "of a cold bake: %.2f×   target ≤ 0.2×: %@", rebuild / cold, rebuild / cold <= 0.2 ? "MET" : "MISSED")),
      Report.time("drover bake, cache hit (whole process)", hit, note: "target < 50 ms: \(hit < 0.05 ? "MET" : "MISSED")"),
    ]
  }

  static func step(_ argv: [String]) throws {
    let status = try runProcess(argv[0], Array(argv.dropFirst()))
    guard status == 0 else { throw BenchError("\(argv[0]) exited \(status)") }
  }
}
