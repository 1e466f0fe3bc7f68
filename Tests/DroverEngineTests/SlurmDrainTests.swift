import DroverEngine
import DroverModel
import DroverRollout
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

  @Test func drainTimesOutWhileAJobKeepsRunningAndNamesIt() throws {
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: "n2"), timeout: .seconds(2)))
    let submitted = HookRunner.run(["sbatch", "--parsable", "-w", "n2", "--output", "/dev/null", "--wrap", "sleep 60"], timeout: 10)
    #expect(submitted.status == 0)
    let job = submitted.output.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(waitUntilRunning("n2"))
    try drainer.cordon(node("anything"))
    let result = try drainer.drainResult(node("anything"), timeout: 2)
    #expect(!result.drained)
    #expect(result.cause?.contains("job \(job) running") == true, "the job that holds it is named: \(String(describing: result.cause))")
    #expect(running("n2"), "it gave up at its timeout while the job was still running")
    try drainer.uncordon(node("anything"))
  }

  /// `node_name` is a template: `{{pool}}` names Slurm node n1 for the VM n1-1 of pool n1.
  @Test func aTemplatedNodeNameDrainsTheSlurmNodeWhoseNameIsNotTheVMs() throws {
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: "{{pool}}"), timeout: .seconds(30)))
    var ep = NodeEndpoint(name: "n1-1", host: "qemu:///system", pool: "n1", image: "demo@v2")
    ep.variables = NodeVariables(node: "n1-1", domain: "n1-1", hostname: "n1-1", address: nil, pool: "n1")
    try drainer.cordon(ep)
    #expect(state("n1").contains("DRAIN"), "the Slurm node the template names was drained: \(state("n1"))")
    #expect(try drainer.drain(ep, timeout: 30))
    try drainer.uncordon(ep)
    var idle = false
    for _ in 0..<50 where !idle {
      idle = state("n1") == "State=IDLE"
      if !idle { Thread.sleep(forTimeInterval: 0.2) }
    }
    #expect(idle, "\(state("n1"))")
  }

  func reason(_ name: String) -> String {
    let out = HookRunner.run(["scontrol", "show", "node", name], timeout: 10).output
    return out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("Reason=") } ?? ""
  }

  /// A job whose epilog is still running is COMPLETING: the node shows IDLE+DRAIN+COMPLETING
  /// (or similar) before it is really free; the drain waits for the epilog to end.
  @Test func aJobKeptCompletingByItsEpilogIsWaitedFor() throws {
    FileManager.default.createFile(atPath: cluster.dir + "/slow-epilog", contents: nil)
    defer { try? FileManager.default.removeItem(atPath: cluster.dir + "/slow-epilog") }
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: nil), timeout: .seconds(60)))
    #expect(HookRunner.run(["sbatch", "-w", "n1", "--output", "/dev/null", "--wrap", "sleep 1"], timeout: 10).status == 0)
    #expect(waitUntilRunning("n1"))
    var ep = node("n1")
    ep.rollout = "hpc-1796"
    try drainer.cordon(ep)
    #expect(reason("n1").contains("drover rollout hpc-1796"), "the drain's reason names the rollout: \(reason("n1"))")
    #expect(try drainer.drain(ep, timeout: 60))
    #expect(FileManager.default.fileExists(atPath: cluster.dir + "/epilog-done"), "drained only once the epilog had ended: \(state("n1"))")
    try drainer.uncordon(ep)
  }

  /// A node its operator drained before the rollout ("disk check") is drained already: Drover
  /// waits for it like any other, and leaves it drained with the operator's reason afterwards.
  @Test func anOperatorsDrainIsKeptWithItsReason() throws {
    #expect(HookRunner.run(["scontrol", "update", "NodeName=n2", "State=DRAIN", "Reason=disk check"], timeout: 10).status == 0)
    defer { _ = HookRunner.run(["scontrol", "update", "NodeName=n2", "State=RESUME"], timeout: 10) }
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: nil), timeout: .seconds(30)))
    var ep = node("n2")
    ep.rollout = "hpc-1797"
    try drainer.cordon(ep)
    #expect(reason("n2").contains("disk check") && !reason("n2").contains("drover"), "the operator's reason stays: \(reason("n2"))")
    #expect(try drainer.drain(ep, timeout: 30))
    try drainer.uncordon(ep)
    #expect(state("n2").contains("DRAIN") && reason("n2").contains("disk check"), "never resumed by Drover: \(state("n2")) \(reason("n2"))")
  }

  /// The replacement gets the operator's state back (#42): a node drained "disk check" before
  /// the rollout is replaced by one that registers fresh (here: another Slurm node, n1, as with
  /// a `node_name` that follows the generation); Drover gives it DRAIN with the same reason.
  @Test func theReplacementGetsTheOperatorsStateBack() throws {
    #expect(HookRunner.run(["scontrol", "update", "NodeName=n2", "State=DRAIN", "Reason=disk check"], timeout: 10).status == 0)
    defer {
      _ = HookRunner.run(["scontrol", "update", "NodeName=n2", "State=RESUME"], timeout: 10)
      _ = HookRunner.run(["scontrol", "update", "NodeName=n1", "State=RESUME"], timeout: 10)
    }
    let drainer = Drainers.make(DrainSpec(backend: .slurm(nodeName: nil), timeout: .seconds(30)))
    let hold = try #require(try drainer.cordonNoting(node("n2")), "an operator's drain is noticed")
    #expect(hold == OperatorHold(state: "DRAIN", reason: "disk check"))
    #expect(OperatorHold(journalText: hold.journalText) == hold, "it reads back from the journal as written")
    try drainer.uncordon(node("n1"), restoring: hold)
    #expect(state("n1").contains("DRAIN") && reason("n1").contains("disk check"), "the replacement is held as its predecessor was: \(state("n1")) \(reason("n1"))")
    #expect(state("n2").contains("DRAIN"), "and the old node was never resumed")
  }

  /// End to end through the runner (fake host, real Slurm): pool `hpc`'s node drains as the
  /// Slurm node n2 (`node_name: n2`), which its operator drained before. The replacement's first
  /// boot clears that (a slurmd registering afresh, `ReturnToService=2`: simulated by the disk
  /// preparation resuming n2). The rollout journals the hold and gives it back, never resumes it.
  @Test func aRolloutJournalsAnOperatorsHoldAndGivesItBack() throws {
    typealias R = RolloutRunnerFakeHostTests
    #expect(HookRunner.run(["scontrol", "update", "NodeName=n2", "State=DOWN", "Reason=disk check"], timeout: 10).status == 0)
    defer { _ = HookRunner.run(["scontrol", "update", "NodeName=n2", "State=RESUME"], timeout: 10) }
    let fleet = try R.Fleet(replicas: 1, strategy: R.inPlace)
    fleet.pool.drain = DrainSpec(backend: .slurm(nodeName: "n2"), timeout: .seconds(20))
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    let preview = try #require(try fleet.plan().rollouts.first)
    #expect(preview.scheduler == "slurm" && preview.schedulerNames == [SchedulerNames(node: "web-1", drains: "n2", uncordons: "n2")], "the plan names the Slurm node")
    let outcome = try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(
        prober: FakeProber(), drainer: Drainers.make(fleet.pool.drain),
        prepare: { n, _ in
          _ = HookRunner.run(["scontrol", "update", "NodeName=n2", "State=RESUME"], timeout: 10)
          return n
        }, sleep: { _ in })
    ).run(preview)
    #expect(outcome.state.status == .completed, "\(outcome.summary)")
    #expect(outcome.state.holds["web-1"] == OperatorHold(state: "DOWN", reason: "disk check"), "the hold is in the journal's fold")
    let records = try fleet.journal().records()
    #expect(records.contains { $0.step == OperatorHold.journalStep && $0.detail == "DOWN: disk check" }, "\(records.map { "\($0.step ?? "") \($0.detail ?? "")" })")
    #expect(state("n2").contains("DOWN") && reason("n2").contains("disk check"), "given back: \(state("n2")) \(reason("n2"))")
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
