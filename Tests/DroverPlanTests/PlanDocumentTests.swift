import DroverBasics
import DroverModel
import DroverPlan
import DroverRollout
import Foundation
import Testing

/// The plan document's keys (#21.3): snake_case both ways, every field of a full plan surviving
/// the round trip through the file, and no key split letter by letter (`memory_mi_b`).
@Suite struct PlanDocumentTests {
  @Test(arguments: [
    ("memoryMiB", "memory_mib"), ("oldUUID", "old_uuid"), ("formatVersion", "format_version"), ("vcpu", "vcpu"),
    ("healthTimeoutMilliseconds", "health_timeout_milliseconds"), ("_0", "_0"), ("seedVolume", "seed_volume"), ("keyID", "key_id"),
  ])
  func keysConvertBothWays(camel: String, snake: String) {
    #expect(SnakeCaseJSON.snake(camel) == snake)
    #expect(SnakeCaseJSON.camel(snake) == camel)
  }

  /// A plan with every optional part filled: a rollout (with a heal drain and a move), an update
  /// with a boot, a seed and an accelerator, undeclared and unknown pools.
  static func fullPlan() -> Plan {
    let host = "test:///default"
    let old = PoolSpec(name: "web", hosts: [host], replicas: 2, image: ImageRef(parsing: "demo@v1")!)
    var new = old
    new.image = ImageRef(parsing: "demo@v2")!
    let domains = (1...2).map { i in
      let o = desiredOwnership(old, index: i, digest: "ab12", generation: 1, project: "p")
      return ObservedDomain(name: o.node, uuid: "uuid-\(i)", state: "running", isActive: true, ownership: o, metadataDigest: "m\(i)", trust: .verified)
    }
    var options = PlanOptions(imageDigests: ["demo@v1": "ab12", "demo@v2": "cd34"], project: "p")
    options.keyHeld = true
    var (plan, _) = makePlan(pools: [new], observed: ObservedWorld(hosts: [host: ObservedHost(uri: host, domains: domains)]), options: options)
    var o = desiredOwnership(new, index: 3, digest: "cd34", generation: 1, project: "p")
    o.rollout = RolloutMark(id: "web-1", phase: "canary", fromImage: "demo@v1", toImage: "demo@v2", by: "h/1", total: 2)
    o.address = "10.0.0.3"
    o.seed = "5eed"
    o.network = "default"
    var definition = NodeDefinition(
      ownership: o, boot: NodeBoot(storagePool: "drover-images", volume: "v", kernel: "/k", initrd: "/i", cmdline: "console=ttyS0", consoleLog: "/c.log"))
    definition.accel = .tcg
    definition.seed = CloudInitSeed.Files(metaData: "m", userData: "u", networkConfig: "n")
    var update = PlannedAction(kind: .update, pool: "web", node: o.node, host: host, reason: "memory", uuid: "u3", before: o, after: definition, restart: true)
    update.destination = "test:///other"
    plan.actions.append(update)
    if !plan.rollouts.isEmpty, !plan.rollouts[0].nodes.isEmpty {
      plan.rollouts[0].nodes[0].toHost = "test:///other"
      plan.rollouts[0].nodes[0].heal = .force(seconds: 5, reason: "sick")
      plan.rollouts[0].kind = .heal
      plan.rollouts[0].resumes = "web-0"
    }
    plan.undeclared = [UndeclaredPool(pool: "gone", nodes: ["gone-1"], hosts: [host])]
    plan.unknown = [UnknownNodes(pool: "far", host: "test:///far", nodes: ["far-1"], reason: "down", seen: [])]
    plan.programs = ["web": ["/bin/true"]]
    plan.acceleration = [host: "TCG"]
    plan.accelerators = [Plan.acceleratorKey(pool: "web", host: host): .tcg]
    return plan
  }

  @Test func aFullPlanSurvivesTheRoundTripAndEveryKeyIsSnakeCase() throws {
    let plan = Self.fullPlan()
    #expect(!plan.rollouts.isEmpty && plan.images == ["demo@v2": "cd34", "demo@v1": "ab12"] && plan.project == "p", "\(plan.images)")
    let data = try SnakeCaseJSON.encoder().encode(plan)
    let back = try SnakeCaseJSON.decoder().decode(Plan.self, from: data)
    #expect(try SnakeCaseJSON.encoder().encode(back) == data, "every field read back as written")
    #expect(back.actions == plan.actions && back.rollouts == plan.rollouts)

    // Keys of the document's own objects (data maps — labels, images, hosts… — are values).
    let dataMaps: Set<String> = ["labels", "images", "hosts", "acceleration", "accelerators", "programs"]
    var keys: [String] = []
    // `skip`: how many levels of keys below are data (world.hosts is a map of maps).
    func walk(_ value: Any, skip: Int) {
      if let object = value as? [String: Any] {
        for (k, v) in object {
          if skip == 0 { keys.append(k) }
          walk(v, skip: skip > 0 ? skip - 1 : dataMaps.contains(k) ? (k == "hosts" ? 2 : 1) : 0)
        }
      } else if let array = value as? [Any] {
        array.forEach { walk($0, skip: 0) }
      }
    }
    walk(try JSONSerialization.jsonObject(with: data), skip: 0)
    let bad = keys.filter { k in
      k.range(of: "^_?[a-z0-9]+(_[a-z0-9]{2,})*$", options: .regularExpression) == nil && !["_0", "_1"].contains(k)
    }
    #expect(keys.count > 60 && bad.isEmpty, "\(Set(bad))")
    #expect(keys.contains("memory_mib") && keys.contains("old_uuid") && keys.contains("action") && keys.contains("format_version"))
  }
}
