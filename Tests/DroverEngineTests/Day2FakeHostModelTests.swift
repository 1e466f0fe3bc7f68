import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Testing

/// The seeded day-2 model test (`Day2ModelTests`, which kills a real `drover apply` on the test
/// driver) in-process: random spec edits applied through the real apply job and engine to a
/// `FakeHost`, a simulated crash at a random boundary of some applies, and after every step the
/// world must be what the model says, with no orphan overlay and nothing left to do.
///
/// Reproduce a failure with `DROVER_MODEL_SEED=<seed>` (printed in every failed expectation).
@Suite struct Day2FakeHostModelTests {
  struct Model: CustomStringConvertible {
    var replicas = 2
    var image = "demo@v1"
    var vcpu = 1
    var memoryMiB = 256
    var label = ""
    var surge = true

    func pool(_ uri: String) -> PoolSpec {
      var p = PoolSpec(name: "mb", hosts: [uri], replicas: replicas, image: ImageRef(parsing: image)!)
      p.resources.vcpu = vcpu
      p.resources.memory = .mebibytes(UInt64(memoryMiB))
      if !label.isEmpty { p.labels = ["tier": label] }
      p.upgrade = UpgradeStrategy(
        canary: .count(1), waves: [.count(2)], maxSurge: .count(surge ? 1 : 0), maxUnavailable: .count(surge ? 0 : 1))
      return p
    }
    var description: String { "replicas \(replicas) \(image) vcpu \(vcpu) mem \(memoryMiB) label '\(label)' surge \(surge)" }
  }

  static var seeds: [UInt64] {
    if let s = ProcessInfo.processInfo.environment["DROVER_MODEL_SEED"].flatMap(UInt64.init) { return [s] }
    return Array(1...12)
  }

  static let project = "model"
  static let uri = "fake:///model"

  final class World: @unchecked Sendable {
    let host: FakeHost
    let drainer: FakeDrainer
    let state: String
    let keyring = Keyring(project: Day2FakeHostModelTests.project, key: RecordKey(bytes: Array(repeating: 9, count: 32), project: Day2FakeHostModelTests.project))
    var crash = SimulatedCrash()

    init() throws {
      host = try FakeHost(uri: Day2FakeHostModelTests.uri, project: Day2FakeHostModelTests.project)
      var current: () -> SimulatedCrash = { SimulatedCrash() }
      drainer = FakeDrainer(crash: { current() })
      state = FileManager.default.temporaryDirectory.appendingPathComponent("drover-model-\(UUID().uuidString.prefix(8))").path
      try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      current = { [unowned self] in self.crash }
    }
    deinit { try? FileManager.default.removeItem(atPath: state) }

    /// One `drover apply --auto-approve` in a new "process" that dies at boundary `crashAt`.
    func apply(_ model: Model, replace: [String] = [], crashAt: Int? = nil) -> Result<ApplyJobResult, any Error> {
      crash = SimulatedCrash(at: crashAt)
      host.crash = crash
      let pools = [model.pool(Day2FakeHostModelTests.uri)]
      let context = RunContext(
        project: Day2FakeHostModelTests.project, stateDirectory: state, pools: pools, backends: [Day2FakeHostModelTests.uri: host],
        declaredHosts: [Day2FakeHostModelTests.uri], keyring: keyring, state: .local, imageDigests: ["demo@v1": "d1", "demo@v2": "d2"],
        isRememberable: { _ in false }, lockCommand: "drover apply (model test)")
      let drainer = self.drainer
      let crash = self.crash
      return Result {
        try ApplyJob.run(ApplyRequest(replace: replace), in: context) { context in
          var hooks = ApplyEngine.Hooks(prober: FakeProber(), drainer: { _ in drainer })
          hooks.journalFaults = crash
          return ApplyEngine(
            pools: context.pools, backends: context.backends, project: context.project, journalDirectory: context.stateDirectory + "/journal",
            keyring: context.keyring, state: context.state, hooks: hooks)
        }
      }
    }
  }

  /// The world against the model: every index once, on the model's image and resources, each
  /// overlay on disk belonging to a domain, nothing cordoned, nothing left to do.
  static func expectMatches(_ w: World, _ model: Model, _ label: String) {
    let domains = w.host.domains.sorted { $0.ownership.index < $1.ownership.index }
    #expect(domains.map(\.ownership.index) == Array(0..<model.replicas).map { $0 + 1 }, "\(label): indexes \(domains.map(\.name))")
    for d in domains {
      let o = d.ownership
      #expect(o.image == model.image && o.vcpu == model.vcpu && o.memoryMiB == model.memoryMiB, "\(label): \(d.name) is \(o.image) \(o.vcpu) \(o.memoryMiB)")
      #expect(o.labels == (model.label.isEmpty ? [:] : ["tier": model.label]), "\(label): \(d.name) labels \(o.labels)")
      #expect(o.rollout == nil, "\(label): \(d.name) still marked by a rollout")
    }
    #expect(w.host.overlayFiles == domains.map { w.host.overlay($0.ownership) }.sorted(), "\(label): overlays \(w.host.overlayFiles)")
    let cordoned = w.drainer.leftCordoned(domains)
    #expect(cordoned.isEmpty, "\(label): left cordoned \(cordoned)")
    guard case .success(.noChanges) = w.apply(model) else {
      Issue.record("\(label): an apply after it still had something to do")
      return
    }
  }

  @Test(arguments: seeds)
  func randomEditsAndCrashesConverge(_ seed: UInt64) throws {
    var rng = SplitMix(state: seed)
    let w = try World()
    var model = Model()
    guard case .success(.ran(_, let first)) = w.apply(model), first.exitStatus == 0 else {
      Issue.record("seed \(seed): the first apply failed")
      return
    }
    for step in 1...10 {
      var next = model
      var replace: [String] = []
      switch rng.below(7) {
      case 0: next.replicas = rng.below(5)
      case 1: next.image = next.image == "demo@v1" ? "demo@v2" : "demo@v1"
      case 2: next.vcpu = 3 - next.vcpu
      case 3: next.memoryMiB = next.memoryMiB == 256 ? 384 : 256
      case 4: next.label = ["", "a", "b"][rng.below(3)]
      case 5 where next.replicas > 0: replace = [NodeName.of(pool: "mb", index: 1 + rng.below(next.replicas))]
      default:
        next.replicas = rng.below(5)
        next.image = ["demo@v1", "demo@v2"][rng.below(2)]
        next.surge.toggle()
      }
      let crashAt = rng.chance(50) ? 1 + rng.below(30) : nil
      let label = "seed \(seed) step \(step): \(next)\(replace.isEmpty ? "" : " replace \(replace)") crash at \(crashAt.map(String.init) ?? "-")"
      let result = w.apply(next, replace: replace, crashAt: crashAt)
      if w.crash.crashedAt == nil, case .failure(let error) = result { Issue.record("\(label): apply failed without a crash: \(error)") }
      // After a crash, the next apply (a new process) finishes the job.
      if w.crash.crashedAt != nil, case .failure = w.apply(next) { Issue.record("\(label): the apply after the crash failed") }
      model = next
      Self.expectMatches(w, model, label)
    }
  }

  /// SplitMix64: small, seedable, the same sequence on every machine.
  struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
  }
}
