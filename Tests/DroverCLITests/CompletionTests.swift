import Foundation
import Testing

/// #22.4: completions offer the project's pool, node, image and rollout names — from its files
/// and this machine's journals, never by opening a libvirt connection (here the pools name a
/// host whose socket does not exist, and completing still answers at once).
@Suite struct CompletionTests {
  /// What the shell gets for `drover <command…> <argument>` with `prefix` typed (the callback
  /// the generated scripts make: `drover ---completion <command> -- <argument> <index> <cursor> <words>`).
  static func complete(_ h: CLIHarness, _ command: [String], _ argument: String, _ prefix: String = "", extra: [String] = []) throws -> [String] {
    let words = ["drover"] + command + extra + [prefix]
    let run = try h.run(["---completion"] + command + ["--", argument, "\(words.count - 1)", "\(prefix.count)"] + words)
    #expect(run.status == 0, "\(run.stderr)")
    return run.stdout.split(separator: "\n").map(String.init)
  }

  @Test func namesComeFromTheSpecsAndTheLocalJournal() throws {
    let h = try CLIHarness()
    let dead = "test+unix:///default?socket=/nonexistent/completion-sock"
    try "name: web\nhosts: [\"\(dead)\"]\nreplicas: 3\nimage: demo@v1\n".write(to: h.dir.appendingPathComponent("pools/web.yaml"), atomically: true, encoding: .utf8)
    try "name: db\nhosts: [\"\(dead)\"]\nreplicas: 1\nimage: demo@v2\n".write(to: h.dir.appendingPathComponent("pools/db.yaml"), atomically: true, encoding: .utf8)
    #expect(try Self.complete(h, ["rollout", "status"], "positional@0") == ["db", "web"])
    #expect(try Self.complete(h, ["rollout", "pause"], "positional@0", "w") == ["web"])
    #expect(try Self.complete(h, ["plan"], "--target") == ["db", "db-1", "web", "web-1", "web-2", "web-3"])
    #expect(try Self.complete(h, ["apply"], "--replace", "web-") == ["web-1", "web-2", "web-3"])
    #expect(try Self.complete(h, ["bake"], "positional@0") == ["demo@v1", "demo@v2"])
    #expect(try Self.complete(h, ["unlock"], "positional@0", "d") == ["db"])

    // Rollout IDs from this machine's journal of the project (a real rollout on the test driver).
    try FileManager.default.removeItem(at: h.dir.appendingPathComponent("pools/web.yaml"))
    try FileManager.default.removeItem(at: h.dir.appendingPathComponent("pools/db.yaml"))
    let pool = CLIHarness.unique("cp")
    try h.writePool(pool, replicas: 1)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 1, image: "demo@v2")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    // Completing reads the journal and writes nothing: no lock, no repair of a torn line.
    let journal = h.dir.appendingPathComponent(".drover/journal/\(pool).jsonl")
    let handle = try FileHandle(forWritingTo: journal)
    handle.seekToEndOfFile()
    handle.write(Data("{\"torn".utf8))
    try handle.close()
    let folder = h.dir.appendingPathComponent(".drover/journal").path
    let before = (try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), try Data(contentsOf: journal))
    let ids = try Self.complete(h, ["rollout", "show"], "positional@0")
    #expect(ids.count == 1 && ids[0].hasPrefix(pool + "-"), "\(ids)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == before.0 && Data(contentsOf: journal) == before.1, "nothing written")
    // Another folder (-C) is another project's names.
    let other = try CLIHarness()
    try other.writePool("zed", replicas: 1)
    #expect(try Self.complete(h, ["drift"], "positional@0", extra: ["-C", other.dir.path]) == ["zed"])
    try h.writePool(pool, replicas: 0, image: "demo@v2")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
  }

  @Test func everyShellGetsAScriptThatCallsBackForNames() throws {
    let h = try CLIHarness()
    for shell in ["bash", "zsh", "fish"] {
      let script = try h.run(["--generate-completion-script", shell])
      #expect(script.status == 0 && script.stdout.contains("---completion rollout status -- positional@0"), "\(shell)")
    }
  }
}
