import Foundation
import Testing

/// #21.2: a saved plan is a pipeline artifact. Made in one checkout, it is read by `drover show`
/// and applied in another (its own state folder, the project key from the environment, as on a
/// throw-away runner); it is refused, naming what differs and changing nothing, when the specs
/// or the project are not the ones it was made from.
@Suite struct SavedPlanCLITests {
  /// A second checkout of `a`'s project: the same files, its own state folder.
  static func checkout(of a: CLIHarness) throws -> CLIHarness {
    let b = try CLIHarness()
    try "project: \(a.project)\nstate: {backend: local, dir: .drover}\n".write(to: b.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    return b
  }

  static func copy(_ file: String, from a: CLIHarness, to b: CLIHarness) throws {
    let target = b.dir.appendingPathComponent(file)
    try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
    try? FileManager.default.removeItem(at: target)
    try FileManager.default.copyItem(at: a.dir.appendingPathComponent(file), to: target)
  }

  @Test func aPlanMadeInOneCheckoutIsShownAndAppliedInAnother() throws {
    let a = try CLIHarness()
    let b = try Self.checkout(of: a)
    let pool = CLIHarness.unique("sp")
    for h in [a, b] { try h.writePool(pool, replicas: 2, extra: "labels: {team: sre}\n") }
    #expect(try a.run(["plan", "--out", "plans/ci.plan"]).status == 0)
    try Self.copy("plans/ci.plan", from: a, to: b)

    // Read anywhere, from the file alone.
    let shown = try b.run(["show", "plans/ci.plan"])
    #expect(shown.status == 0, "\(shown.stderr)")
    #expect(shown.stdout.contains("of project \(a.project)") && shown.stdout.contains("image demo@v1") && shown.stdout.contains("+ \(pool)-1"))
    #expect(shown.stdout.contains("Plan: 2 to add, 0 to change, 0 to destroy."))
    let document = try b.json(try b.run(["show", "plans/ci.plan", "--json"]).stdout)
    #expect(document["project"] as? String == a.project && document["format_version"] as? String == "3.0")

    let applied = try b.run(["apply", "plans/ci.plan"])
    #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
    #expect(try a.nodes(pool).count == 2)
    let key = try b.run(["key", "export"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(!key.isEmpty)
    let withKey = ["DROVER_PROJECT_KEY": key]
    #expect(try a.run(["plan", "--detailed-exitcode"], environment: withKey).status == 0, "checkout a sees exactly what b applied")

    // The specs moved on in a, not (yet) in b: b refuses a's new plan and changes nothing.
    try a.writePool(pool, replicas: 3, extra: "labels: {team: sre}\n")
    #expect(try a.run(["plan", "--out", "plans/ci.plan"], environment: withKey).status == 0)
    try Self.copy("plans/ci.plan", from: a, to: b)
    let stale = try b.run(["apply", "plans/ci.plan"])
    #expect(stale.status == 1 && stale.stderr.contains("the pool specs changed since the plan was saved") && stale.stderr.contains("No action was taken"), "\(stale.stderr)")
    #expect(try a.nodes(pool).count == 2)
    try b.writePool(pool, replicas: 3, extra: "labels: {team: sre}\n")
    #expect(try b.run(["apply", "plans/ci.plan"]).status == 0)
    #expect(try a.nodes(pool).count == 3)

    // Another project's checkout refuses it by name.
    let other = try CLIHarness()
    try other.writePool(pool + "x", replicas: 1)
    try Self.copy("plans/ci.plan", from: a, to: other)
    let foreign = try other.run(["apply", "plans/ci.plan"])
    #expect(foreign.status == 1 && foreign.stderr.contains("the plan was made for project \(a.project); this checkout is project \(other.project)"), "\(foreign.stderr)")
    #expect(try other.nodes(pool + "x").isEmpty)

    for h in [a, b] { try h.writePool(pool, replicas: 0) }
    #expect(try b.run(["apply", "--auto-approve"]).status == 0)
  }

  /// An edited plan file never reaches the terminal as it is: escapes are shown as `?`.
  @Test func showNeverPrintsTheFilesEscapeSequences() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("se")
    try h.writePool(pool, replicas: 1)
    #expect(try h.run(["plan", "--out", "p.plan"]).status == 0)
    let path = h.dir.appendingPathComponent("p.plan")
    let text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(of: "\"new node\"", with: "\"\\u001b[2Jhidden\"")
    try text.write(to: path, atomically: true, encoding: .utf8)
    let shown = try h.run(["show", "p.plan"])
    #expect(shown.status == 0 && !shown.stdout.contains("\u{1B}") && shown.stdout.contains("?[2Jhidden"), "\(shown.stdout)")
    let old = try h.run(["show", "/nonexistent/p.plan"])
    #expect(old.status == 1 && old.stderr.contains("cannot read plan file"))
  }

  /// A plan file of the previous format is named as such.
  @Test func aPlanOfAnotherFormatIsNamed() throws {
    let h = try CLIHarness()
    try #"{"formatVersion": "2.0", "actions": []}"#.write(to: h.dir.appendingPathComponent("old.plan"), atomically: true, encoding: .utf8)
    let run = try h.run(["show", "old.plan"])
    #expect(run.status == 1 && run.stderr.contains("the plan file has format 2.0; this Drover reads 3.0"), "\(run.stderr)")
  }
}
