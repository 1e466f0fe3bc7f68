import Foundation
import Testing

/// #21.3: every JSON document Drover prints is checked against its schema in schemas/ (by
/// scripts/check-json, Debian's python3-jsonschema), from real runs on the test driver: one
/// style of keys (the schemas forbid any key they do not name, and name only snake_case ones),
/// `format_version` in every document and every line of an event stream.
@Suite struct JSONContractTests {
  static let schemas = CLIHarness.repo.appendingPathComponent("schemas")

  /// Problems scripts/check-json finds in `text` against schema `name` (empty: valid).
  static func problems(_ name: String, _ text: String) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-json-\(UUID().uuidString.prefix(8)).json")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let (status, report) = try ToolProcess.run("/usr/bin/env", ["python3", CLIHarness.repo.appendingPathComponent("scripts/check-json").path, name, file.path])
    return status == 0 ? "" : report.isEmpty ? "check-json exited \(status)" : report
  }

  static func expectValid(_ name: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(!text.isEmpty, "\(name): no output", sourceLocation: sourceLocation)
    let found = try problems(name, text)
    #expect(found.isEmpty, "\(name): \(found)\n\(text.prefix(2000))", sourceLocation: sourceLocation)
  }

  static func lines(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
  }

  @Test func everyDocumentOfARolloutWithARollbackMatchesItsSchema() throws {
    let r = try RolloutHarness()
    let h = r.h
    let plan = try h.run(["plan", "--json"])
    try Self.expectValid("plan", plan.stdout)
    #expect(try h.run(["plan", "--out", "plans/first.plan"]).status == 0)
    let saved = try String(contentsOf: h.dir.appendingPathComponent("plans/first.plan"), encoding: .utf8)
    try Self.expectValid("plan", saved)
    let shown = try h.run(["show", "plans/first.plan", "--json"])
    try Self.expectValid("plan", shown.stdout)
    // One shape: what plan --json prints is what the file holds (the same keys, the same actions).
    let printed = try h.json(plan.stdout), file = try h.json(saved)
    #expect(Set(printed.keys) == Set(file.keys))
    #expect((printed["actions"] as? [[String: Any]])?.count == (file["actions"] as? [[String: Any]])?.count)

    let created = try h.run(["apply", "plans/first.plan", "--json"])
    #expect(created.status == 0, "\(created.stderr)")
    try Self.expectValid("apply-event", created.stdout)
    #expect(Self.lines(created.stdout).allSatisfy { $0["format_version"] as? String == "2.0" })

    try r.setImage("demo@v2")
    try r.fail(1)
    let rolled = try h.run(["apply", "--auto-approve", "--json"])
    #expect(rolled.status == 3, "\(rolled.stdout)\(rolled.stderr)")
    try Self.expectValid("apply-event", rolled.stdout)
    let events = Self.lines(rolled.stdout)
    let types = Set(events.filter { $0["event"] as? String == "rollout" }.compactMap { $0["type"] as? String })
    #expect(types.isSuperset(of: ["started", "wave", "step", "node", "rollback_started", "rolled_back"]), "\(types)")
    let health = events.first { $0["type"] as? String == "step" && $0["step"] as? String == "health" }
    #expect(health?["outcome"] as? String == "failed" && health?["duration_seconds"] is Double && health?["wave"] as? Int == 0, "\(String(describing: health))")
    #expect(events.last?["event"] as? String == "summary" && events.last?["exit_status"] as? Int == 3)
    let rollout = (events.last?["rollouts"] as? [[String: Any]])?.first
    #expect(rollout?["status"] as? String == "rolled-back" && (rollout?["failed"] as? [String: String])?.keys.first == "\(r.pool)-1", "\(String(describing: rollout))")

    try Self.expectValid("rollout-status", try h.run(["rollout", "status", "--json"]).stdout)
    try Self.expectValid("rollout-history", try h.run(["rollout", "history", "--json"]).stdout)
    try Self.expectValid("status", try h.run(["status", "--json"]).stdout)
    try Self.expectValid("drift", try h.run(["drift", "--json"]).stdout)
    try Self.expectValid("diagnostics", try h.run(["validate", "--format", "json"]).stdout)
    try Self.expectValid("host-list", try h.run(["host", "list", "--json"]).stdout)
    try Self.expectValid("images", try h.run(["images", "--json"]).stdout)
    try Self.expectValid("heal-event", try h.run(["heal", "--json", "--dry-run"]).stdout)
    // Errors under --json are diagnostics lines, in a stream or alone.
    try "{}".write(to: h.dir.appendingPathComponent("bad.plan"), atomically: true, encoding: .utf8)
    let bad = try h.run(["apply", "bad.plan", "--json"])
    #expect(bad.status == 1)
    try Self.expectValid("apply-event", bad.stdout)
    try Self.expectValid("diagnostics", bad.stdout)
    try r.cleanup()
  }

  /// #42: the plan names each node as its scheduler knows it (drained, then uncordoned), in text
  /// and in JSON, from `drain.node_name`.
  @Test func thePlanNamesTheSchedulersNodes() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("sn")
    let spec = "drain: {type: slurm, node_name: \"hpc-{{node}}\"}\nupgrade: {canary: 1, max_surge: 1, max_unavailable: 0}\n"
    try h.writePool(pool, replicas: 2, image: "demo@v1", extra: spec)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 2, image: "demo@v2", extra: spec)
    let text = try h.run(["plan"])
    #expect(text.stdout.contains("slurm node names (drain.node_name):") && text.stdout.contains("\(pool)-1: drains hpc-\(pool)-1, then uncordons it"), "\(text.stdout)")
    let json = try h.run(["plan", "--json"])
    try Self.expectValid("plan", json.stdout)
    #expect(json.stdout.contains("\"scheduler_names\"") && json.stdout.contains("\"hpc-\(pool)-2\""), "\(json.stdout.prefix(3000))")
  }

  /// The check can fail: a camelCase key, a missing format_version, an unknown event.
  @Test func theSchemasRefuseWhatBreaksTheContract() throws {
    let node = #"{"pool":"a","node":"a-1","host":"h","state":"running","image":"i@v1","generation":1,"pending":false}"#
    #expect(try Self.problems("status", #"{"format_version":"1.0","unreachable":{},"nodes":[\#(node)]}"#).isEmpty)
    #expect(try Self.problems("status", #"{"format_version":"1.0","unreachable":{},"nodes":[\#(node.dropLast()),"memoryMiB":1}]}"#).contains("memoryMiB"))
    #expect(!(try Self.problems("status", #"{"unreachable":{},"nodes":[]}"#).isEmpty))
    #expect(!(try Self.problems("apply-event", #"{"format_version":"2.0","event":"bogus","time":"2026-01-01T00:00:00Z"}"#).isEmpty))
  }

  /// Every key a schema names is snake_case, and every document schema requires its version.
  @Test func theSchemasThemselvesNameOnlySnakeCaseKeys() throws {
    let files = try FileManager.default.contentsOfDirectory(atPath: Self.schemas.path).filter { $0.hasSuffix(".schema.json") }
    #expect(files.count >= 11)
    var keys: [String] = []
    func walk(_ value: Any) {
      if let object = value as? [String: Any] {
        if let properties = object["properties"] as? [String: Any] { keys += properties.keys }
        object.values.forEach(walk)
      } else if let array = value as? [Any] {
        array.forEach(walk)
      }
    }
    for file in files {
      let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.schemas.appendingPathComponent(file)))
      walk(schema)
    }
    let bad = keys.filter { $0.range(of: "^[a-z][a-z0-9_]*$", options: .regularExpression) == nil }
    #expect(!keys.isEmpty && bad.isEmpty, "\(bad)")
  }
}
