import DroverEngine
import DroverModel
import Foundation
import Testing

/// The Slurm drain back-end against real slurmctld/slurmd daemons on localhost (Debian's
/// slurm-wlm, started here by `Tests/Fixtures/slurm/start-cluster.sh`).
@Suite(.serialized, .enabled(if: SlurmCluster.installed, "needs slurm-wlm and munge (run scripts/setup)"))
final class SlurmDrainTests {
  let cluster: SlurmCluster

  init() throws { cluster = try SlurmCluster.start() }
  deinit { cluster.stop() }

  func node(_ name: String) -> NodeEndpoint { NodeEndpoint(name: name, host: "qemu:///system", pool: "hpc", image: "demo@v2") }

  func state(_ name: String) -> String {
    let out = HookRunner.run(["scontrol", "show", "node", name], timeout: 10).output
    return out.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("State=") }.map(String.init) ?? "?"
  }

  func running(_ node: String) -> Bool {
    HookRunner.run(["squeue", "-h", "-w", node, "-t", "R"], timeout: 10).output.contains(node)
  }

  func waitUntilRunning(_ node: String) -> Bool {
    for _ in 0..<75 {
      if HookRunner.run(["squeue", "-h", "-w", node, "-t", "R"], timeout: 10).output.contains(node) { return true }
      Thread.sleep(forTimeInterval: 0.2)
    }
    return false
  }

  @Test func drainWaitsForTheRunningJobThenResumes() throws {
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: nil), timeout: .seconds(60)))
    let job = HookRunner.run(["sbatch", "-w", "n1", "--output", "/dev/null", "--wrap", "sleep 3"], timeout: 10)
    #expect(job.status == 0, "\(job.output)")
    #expect(waitUntilRunning("n1"), "the job started on n1")

    try drainer.cordon(node("n1"))
    #expect(state("n1").contains("DRAIN"), "scontrol update State=DRAIN took effect: \(state("n1"))")
    #expect(try drainer.drain(node("n1"), timeout: 60))
    #expect(!running("n1"), "drain returned only once the job had finished")
    #expect(state("n1").contains("DRAIN"))
    try drainer.uncordon(node("n1"))
    var idle = false
    for _ in 0..<50 where !idle {
      idle = state("n1") == "State=IDLE"
      if !idle { Thread.sleep(forTimeInterval: 0.2) }
    }
    #expect(idle, "State=RESUME returns the node to idle: \(state("n1"))")
  }

  @Test func drainTimesOutWhileAJobKeepsRunning() throws {
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: "n2"), timeout: .seconds(2)))
    #expect(HookRunner.run(["sbatch", "-w", "n2", "--output", "/dev/null", "--wrap", "sleep 60"], timeout: 10).status == 0)
    #expect(waitUntilRunning("n2"))
    try drainer.cordon(node("anything"))
    #expect(try drainer.drain(node("anything"), timeout: 2) == false)
    #expect(running("n2"), "it gave up at its timeout while the job was still running")
    try drainer.uncordon(node("anything"))
  }
}

/// A scratch Slurm cluster (munged + slurmctld + slurmd n1, n2) for one test.
final class SlurmCluster: @unchecked Sendable {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/slurm")
  static let installed = FileManager.default.fileExists(atPath: "/usr/sbin/slurmctld") && FileManager.default.fileExists(atPath: "/usr/sbin/munged")
  let dir: String

  private init(dir: String) { self.dir = dir }

  static func start() throws -> SlurmCluster {
    let dir = "/tmp/drover-slurm-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    let port = 20000 + Int.random(in: 0..<400) * 10
    let result = HookRunner.run(["/bin/bash", fixtures.appendingPathComponent("start-cluster.sh").path, dir, "\(port)"], timeout: 60)
    guard result.status == 0 else { throw SlurmError(message: "slurm did not start: \(result.output)") }
    // Every scontrol/sbatch this process runs (including Drover's hooks) talks to this cluster.
    setenv("SLURM_CONF", dir + "/slurm.conf", 1)
    return SlurmCluster(dir: dir)
  }

  func stop() {
    _ = HookRunner.run(["/bin/bash", Self.fixtures.appendingPathComponent("stop-cluster.sh").path, dir], timeout: 60)
    try? FileManager.default.removeItem(atPath: dir)
  }
}

struct SlurmError: Error { var message: String }
