import DroverModel
import DroverRollout
import Foundation
import Testing

/// One node's steps, decided by `nextNodeStep` and acted out on a simulated index of domains with
/// scripted outcomes and a simulated clock; each sequence is compared with a golden file
/// (`DROVER_UPDATE_GOLDEN=1` rewrites them). Every sequence is also crashed after each of its
/// actions and resumed with an empty attempt: it must end as the uncrashed run did, never with
/// two domains of one generation.
@Suite struct NodeStepTests {
  struct Scenario: CustomTestStringConvertible, Sendable {
    var name: String
    var surge = false
    var rollback = false
    /// The replacement goes to host "b".
    var move = false
    var heal: HealDrain? = nil
    var drainTimesOut = false
    var drain = DrainSpec(timeout: .seconds(30))
    /// Generations whose health checks fail.
    var unhealthy: Set<Int> = []
    /// The domains of the index when the step starts (default: the original alone).
    var start: [IndexDomain]? = nil
    var connected: Set<String> = ["a", "b"]
    /// `keep_previous` (#45): the replaced domain is kept shut off.
    var keep = false
    var testDescription: String { name }
  }

  static func record(generation: Int, image: String) -> NodeOwnership {
    NodeOwnership(
      pool: "web", node: "web-1", index: 1, image: image, digest: "", specHash: "", generation: generation, vcpu: 1, memoryMiB: 256,
      diskMiB: 1024, network: nil, labels: [:], protect: false)
  }
  static let original = IndexDomain(name: "web-1", uuid: "u1", host: "a", generation: 1)
  static let forward = IndexDomain(name: "web-1-g2", uuid: "u2", host: "a", generation: 2)
  static let forwardInPlace = IndexDomain(name: "web-1", uuid: "u2", host: "a", generation: 2)

  static func node(_ s: Scenario) -> RolloutNode {
    var n = RolloutNode(
      key: "web-1", index: 1, host: "a", oldName: "web-1", oldUUID: "u1", from: record(generation: 1, image: "demo@v1"),
      to: record(generation: 2, image: "demo@v2"), reason: "image")
    if s.move { n.toHost = "b" }
    n.heal = s.heal
    if s.keep { n.keep = true }
    return n
  }

  static let scenarios: [Scenario] = [
    Scenario(name: "in place, healthy"),
    Scenario(name: "surge, healthy", surge: true),
    Scenario(name: "surge, moving to another host", surge: true, move: true),
    Scenario(name: "in place, drain times out (on_timeout fail)", drainTimesOut: true),
    Scenario(name: "in place, drain times out (on_timeout force)", drainTimesOut: true, drain: DrainSpec(timeout: .seconds(30), onTimeout: .force)),
    Scenario(name: "in place, drain times out, leave cordoned", drainTimesOut: true, drain: DrainSpec(timeout: .seconds(30), onFailure: .leaveCordoned)),
    Scenario(name: "in place, replacement unhealthy", unhealthy: [2]),
    Scenario(name: "surge, replacement unhealthy", surge: true, unhealthy: [2]),
    Scenario(name: "rollback in place of a replaced node", rollback: true, start: [forwardInPlace]),
    Scenario(name: "rollback with surge of a replaced node", surge: true, rollback: true, start: [forward]),
    Scenario(name: "rollback keeps an original that is still there", surge: true, rollback: true, start: [original, forward]),
    Scenario(name: "rollback of an untouched node", rollback: true),
    Scenario(name: "heal of a dead node: drain skipped", heal: .skip(reason: "the node is shut off")),
    Scenario(name: "heal of a silent node: drain forced", heal: .force(seconds: 90, reason: "no heartbeat"), drainTimesOut: true),
    Scenario(name: "replacement host not connected", move: true, connected: ["a"]),
    Scenario(name: "surge, keeps the old node", surge: true, keep: true),
    Scenario(name: "in place, keeps the old node", keep: true),
    Scenario(name: "in place, keeps the old node, replacement unhealthy", unhealthy: [2], keep: true),
    Scenario(name: "rollback starts a kept original", surge: true, rollback: true, start: [keptOriginal, forward]),
    Scenario(name: "rollback, the kept original does not come back", surge: true, rollback: true, unhealthy: [1], start: [keptOriginal, forward]),
    // A node the rollout meant to keep whose kept original is gone (finished, expired): rebuilt
    // cold, and the node it goes back from is removed, never kept.
    Scenario(name: "rollback with surge of a kept-marked node whose original is gone", surge: true, rollback: true, start: [forward], keep: true),
    Scenario(name: "rollback in place of a kept-marked node whose original is gone", rollback: true, start: [forwardInPlace], keep: true),
  ]
  static let keptOriginal = IndexDomain(name: "web-1", uuid: "u1", host: "a", generation: 1, kept: true)

  struct Run {
    var log: [String] = []
    var world: [IndexDomain]
    var end: NodeStep = .done
    var actions = 0
  }

  /// Acts `nextNodeStep`'s decisions out until the node is done or failed. `crashAfter`: after
  /// that many actions the process "dies" (the attempt is forgotten, the world stays) and a new
  /// attempt resumes.
  static func simulate(_ s: Scenario, crashAfter: Int? = nil) -> Run {
    var run = Run(world: s.start ?? [original])
    var attempt = NodeAttempt()
    var clock = 0
    var uuids = 2
    let node = node(s)
    func say(_ line: String) { run.log.append(String(format: "t=%3ds  ", clock) + line) }
    for _ in 0..<40 {
      let generations = run.world.map(\.generation)
      if Set(generations).count != generations.count || run.world.count > 2 {
        Issue.record("\(s.name): invariant broken: \(run.world.map(\.name)) (crash after \(crashAfter.map(String.init) ?? "-"))")
        run.log.append("INVARIANT BROKEN")
        return run
      }
      let input = NodeStepInput(
        node: node, domains: run.world, rollback: s.rollback, surge: s.surge, healing: s.heal != nil, drain: NodeDrainPolicy(s.drain),
        connected: s.connected, attempt: attempt)
      let step = nextNodeStep(input)
      switch step {
      case .done:
        say("done: " + run.world.map { "\($0.name)@\($0.host) g\($0.generation)\($0.kept ? " kept" : "")" }.joined(separator: ", "))
        run.end = step
        return run
      case .failed(let reason):
        say("failed: \(reason)")
        run.end = step
        return run
      case .cordon(let d, let mayFail):
        clock += 1
        say("cordon \(d.name)\(mayFail ? " (may fail)" : "")")
        attempt.cordoned = true
      case .drain(let d, let order):
        switch order {
        case .graceful(let timeout, let fail):
          clock += s.drainTimesOut ? Int(timeout) : 5
          say("drain \(d.name) within \(Int(timeout))s\(fail ? ", failing on timeout" : ""): \(s.drainTimesOut ? "timed out" : "drained")")
          attempt.drain = s.drainTimesOut ? .timedOut : .finished
        case .forced(let seconds, let reason):
          clock += s.drainTimesOut ? Int(seconds) : 5
          say("drain \(d.name) forced, at most \(Int(seconds))s (\(reason))")
          attempt.drain = .finished
        case .skip(let reason):
          say("drain \(d.name) skipped: \(reason)")
          attempt.drain = .finished
        }
      case .create(let o, let host, let exact):
        clock += 2
        uuids += 1
        run.world.append(IndexDomain(name: o.node, uuid: "u\(uuids)", host: host, generation: o.generation))
        say("create \(o.node) g\(o.generation) \(o.image) on \(host)\(exact ? " (exact build)" : "")")
        attempt.created = true
      case .health(let d):
        clock += 10
        let sick = s.unhealthy.contains(d.generation)
        say("health \(d.name): \(sick ? "unhealthy" : "healthy")")
        attempt.health = sick ? .unhealthy("console never said ready") : .healthy
      case .remove(let d, let kind):
        clock += 1
        run.world.removeAll { $0.uuid == d.uuid }
        say("\(kind.rawValue) \(d.name)@\(d.host) g\(d.generation)")
      case .keep(let d):
        clock += 3
        if let i = run.world.firstIndex(where: { $0.uuid == d.uuid }) { run.world[i].kept = true }
        say("keep \(d.name) (shut off, disk kept)")
      case .revive(let d):
        clock += 3
        if let i = run.world.firstIndex(where: { $0.uuid == d.uuid }) {
          run.world[i].kept = false
          run.world[i].revived = true
        }
        say("start kept \(d.name) on its own disk")
        attempt.revived = true
      case .recordHealthFailure(let d, let reason):
        say("record in \(d.name) that it failed: \(reason)")
        attempt.healthFailureRecorded = true
      case .uncordon(let d, let bestEffort):
        clock += 1
        say("uncordon \(d.name)\(bestEffort ? " (best effort)" : "")")
        if bestEffort { attempt.oldUncordoned = true } else { attempt.uncordoned = true }
      }
      run.actions += 1
      attempt.steps += 1
      if run.actions == crashAfter {
        say("-- crash: the attempt is forgotten, the domains stay --")
        attempt = NodeAttempt()
      }
    }
    run.log.append("did not finish")
    Issue.record("\(s.name): did not finish")
    return run
  }

  static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

  @Test(arguments: scenarios)
  func stepsMatchGoldenSequence(_ s: Scenario) throws {
    let run = Self.simulate(s)
    var text = run.log.joined(separator: "\n") + "\n"
    // Crash after every action: the resumed attempt ends as the uncrashed one did.
    text += "\ncrash after each action, then resume:\n"
    for k in 0..<max(0, run.actions) {
      let crashed = Self.simulate(s, crashAfter: k + 1)
      #expect(crashed.end == run.end, "\(s.name): crash after action \(k + 1) ended \(crashed.end), not \(run.end)")
      func shape(_ w: [IndexDomain]) -> [String] { w.map { "\($0.name)@\($0.host) g\($0.generation)\($0.kept ? " kept" : "")" }.sorted() }
      #expect(shape(crashed.world) == shape(run.world), "\(s.name): crash after action \(k + 1)")
      text += "  after \(k + 1): \(crashed.actions - k - 1) more actions, same end\n"
    }
    let file = Self.golden.appendingPathComponent("node: " + s.name + ".golden")
    if ProcessInfo.processInfo.environment["DROVER_UPDATE_GOLDEN"] == "1" {
      try text.write(to: file, atomically: true, encoding: .utf8)
    }
    #expect(text == (try String(contentsOf: file, encoding: .utf8)))
  }

  /// Single decisions the sequences pass through, as a table.
  @Test func decisionsAsATable() {
    let n = Self.node(Scenario(name: ""))
    let drain = NodeDrainPolicy(DrainSpec(timeout: .seconds(30)))
    func decide(_ domains: [IndexDomain], surge: Bool = false, _ change: (inout NodeAttempt) -> Void = { _ in }) -> NodeStep {
      var attempt = NodeAttempt()
      change(&attempt)
      return nextNodeStep(
        NodeStepInput(node: n, domains: domains, rollback: false, surge: surge, healing: false, drain: drain, connected: ["a"], attempt: attempt))
    }
    #expect(decide([Self.original]) == .cordon(Self.original, mayFail: false))
    #expect(decide([Self.original]) { $0.cordoned = true } == .drain(Self.original, .graceful(timeoutSeconds: 30, failOnTimeout: true)))
    #expect(decide([Self.original]) { $0.cordoned = true; $0.drain = .finished } == .remove(Self.original, .old))
    // The replacement's name is decided once, by the step: in place it takes the index name,
    // with surge the other one.
    guard case .create(let inPlace, "a", false) = decide([]) else { Issue.record("no create"); return }
    #expect(inPlace.node == "web-1" && inPlace.generation == 2 && inPlace.image == "demo@v2")
    let drained: (inout NodeAttempt) -> Void = { $0.cordoned = true; $0.drain = .finished }
    guard case .create(let surged, "a", false) = decide([Self.original], surge: true, drained) else {
      Issue.record("no surge create")
      return
    }
    #expect(surged.node == "web-1-g2")
    // A create that ran and left nothing is a failure, never a second create.
    #expect(decide([]) { $0.created = true } == .failed("the new node did not appear"))
    // A replacement already there (a resumed step) is checked, not made again.
    #expect(decide([Self.forwardInPlace]) == .health(Self.forwardInPlace))
    #expect(decide([Self.forwardInPlace]) { $0.health = .healthy } == .uncordon(Self.forwardInPlace, bestEffort: false))
    #expect(decide([Self.forwardInPlace]) { $0.health = .healthy; $0.uncordoned = true } == .done)

    // Rolling a heal back drains the healthy rebuild as any node: its cordon may not fail, its
    // drain is the pool's, never the sick node's skip or force.
    let healed = Self.node(Scenario(name: "", heal: .skip(reason: "the node is shut off")))
    func back(_ change: (inout NodeAttempt) -> Void = { _ in }) -> NodeStep {
      var attempt = NodeAttempt()
      change(&attempt)
      return nextNodeStep(
        NodeStepInput(node: healed, domains: [Self.forwardInPlace], rollback: true, surge: false, healing: true, drain: drain, connected: ["a"], attempt: attempt))
    }
    #expect(back() == .cordon(Self.forwardInPlace, mayFail: false))
    #expect(back { $0.cordoned = true } == .drain(Self.forwardInPlace, .graceful(timeoutSeconds: 30, failOnTimeout: true)))
  }
}
