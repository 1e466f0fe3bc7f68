import Foundation
import Libvirt
import Testing

/// A seeded model-based test: random sequences of spec edits and `kill -9` during apply, on the
/// test driver with real overlays, checking after every step that the world is what the model says.
///
/// Reproduce a failure with `DROVER_MODEL_SEED=<seed>` (printed in every failed expectation).
@Suite(.serialized) struct Day2ModelTests {
  /// SplitMix64: small, seedable, the same sequence on every machine.
  struct Random {
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

  struct Model: CustomStringConvertible {
    var replicas = 2
    var image = "demo@v1"
    var vcpu = 1
    var memoryMiB = 256
    var label = ""
    var protect = false
    var network = false

    var yaml: String {
      var extra = "resources: {vcpu: \(vcpu), memory: \(memoryMiB)MiB}\nprotect: \(protect)\nupgrade: {canary: 1, waves: [2], max_surge: 1, max_unavailable: 0}\n"
      if !label.isEmpty { extra += "labels: {tier: \(label)}\n" }
      if network { extra += "network: default\n" }
      return extra
    }
    var description: String {
      "replicas \(replicas) \(image) vcpu \(vcpu) mem \(memoryMiB) label '\(label)' protect \(protect) net \(network)"
    }
  }

  static let crashPoints = [
    "overlay-created", "overlay-created#2", "domain-undefined", "rollout-started", "step-done:cordon", "step-started:create",
    "step-done:create", "step-done:health", "step-done:remove-old", "node-done", "node-done#2",
  ]

  static var seeds: [UInt64] {
    if let s = ProcessInfo.processInfo.environment["DROVER_MODEL_SEED"].flatMap(UInt64.init) { return [s] }
    return [1, 2, 3, 4, 5, 9]
  }

  @Test(arguments: seeds)
  func randomEditsAndCrashesConverge(_ seed: UInt64) throws {
    var rng = Random(state: seed)
    let h = try CLIHarness()
    let pool = CLIHarness.unique("mb")
    let bystander = try h.holder.defineDomain(
      xml: "<domain type='test'><name>\(pool)-bystander</name><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    defer { try? bystander.undefine() }
    let bystanderXML = try bystander.xml(inactive: true)
    var model = Model()
    try h.writePool(pool, replicas: model.replicas, image: model.image, extra: model.yaml)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0, "seed \(seed): first apply")

    for step in 1...8 {
      var next = model
      var replace: [String] = []
      switch rng.below(8) {
      case 0: next.replicas = rng.below(5)
      case 1: next.image = next.image == "demo@v1" ? "demo@v2" : "demo@v1"
      case 2: next.vcpu = 3 - next.vcpu
      case 3: next.memoryMiB = next.memoryMiB == 256 ? 384 : 256
      case 4: next.label = ["", "a", "b"][rng.below(3)]
      case 5: next.network.toggle()
      case 6 where next.replicas > 0: replace = ["--replace", "\(pool)-\(1 + rng.below(next.replicas))"]
      default:
        next.replicas = rng.below(5)
        next.image = ["demo@v1", "demo@v2"][rng.below(2)]
      }
      if rng.chance(15) { next.protect.toggle() }
      var context = "seed \(seed) step \(step): \(model) → \(next) \(replace)"
      try h.writePool(pool, replicas: next.replicas, image: next.image, extra: next.yaml)

      let plan = try h.run(["plan", "--json"] + replace)
      let blocked = plan.status != 0
      if blocked {
        // Only protection may refuse a plan here, and then nothing may change.
        #expect(plan.stdout.contains("plan.protected"), "\(context): \(plan.stdout)\(plan.stderr)")
        let before = try h.nodes(pool)
        #expect(try h.run(["apply", "--auto-approve"] + replace).status == 1, "\(context)")
        #expect(try h.nodes(pool) == before, "\(context): a refused plan touches nothing")
        // Unprotecting takes two applies (the stricter of spec and record wins): protect: false
        // alone first, then the change.
        var unprotected = model
        unprotected.protect = false
        try h.writePool(pool, replicas: unprotected.replicas, image: unprotected.image, extra: unprotected.yaml)
        #expect(try h.run(["apply", "--auto-approve"]).status == 0, "\(context): unprotect alone")
        next.protect = false
        try h.writePool(pool, replicas: next.replicas, image: next.image, extra: next.yaml)
      }

      if rng.chance(50) {
        let point = Self.crashPoints[rng.below(Self.crashPoints.count)]
        let crashed = try h.run(["apply", "--auto-approve"] + replace, environment: ["DROVER_CRASH_AT": point])
        context += " [killed at \(point): exit \(crashed.status); its output: \(crashed.stdout.suffix(1500))]"
      }
      let apply = try h.run(["apply", "--auto-approve"] + replace)
      context += " [repair: \(apply.stdout.suffix(2500))]"
      #expect(apply.status == 0, "\(context): \(apply.stdout)\(apply.stderr)")
      model = next
      try check(h, pool, model, context: context)
      #expect(try bystander.xml(inactive: true) == bystanderXML, "\(context): a foreign domain is byte-identical")
    }
    if model.protect {
      model.protect = false
      try h.writePool(pool, replicas: model.replicas, image: model.image, extra: model.yaml)
      #expect(try h.run(["apply", "--auto-approve"]).status == 0, "seed \(seed): unprotect")
    }
    try h.writePool(pool, replicas: 0)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.overlays(pool).isEmpty, "seed \(seed): nothing left")
  }

  func check(_ h: CLIHarness, _ pool: String, _ model: Model, context: String) throws {
    let nodes = try h.nodes(pool)
    #expect(nodes.map(\.index) == Array(1...max(1, model.replicas)).prefix(model.replicas).map { $0 }, "\(context): one domain per index: \(nodes.map(\.name))")
    try h.expectOverlaysMatchDomains(pool, context)
    #expect(nodes.allSatisfy { $0.image == model.image && $0.vcpu == model.vcpu && $0.memoryKiB == UInt64(model.memoryMiB) * 1024 }, "\(context): observed = spec: \(nodes)")
    #expect(nodes.allSatisfy { !$0.healthFailed }, "\(context)")
    let plan = try h.run(["plan", "--detailed-exitcode"])
    #expect(plan.status == 0, "\(context): converged: \(plan.stdout)")
  }
}
