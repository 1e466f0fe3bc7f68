import Foundation
import Synchronization
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// #22.3: `drover rollout show` prints a rolled-back rollout's timeline from the journal, and
/// `--svg` draws it: rendered by rsvg-convert (librsvg), and its elements read back — a row per
/// node, a bar per step coloured by outcome, the waves and the budget line.
@Suite struct RolloutShowTests {
  /// The SVG's elements: (name, attributes), in document order.
  final class Elements: NSObject, XMLParserDelegate {
    var found: [(name: String, attributes: [String: String])] = []
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
      found.append((name, attributes))
    }
  }

  @Test func aRolledBackRolloutIsShownAndDrawn() throws {
    let r = try RolloutHarness(replicas: 3, budget: 0)
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try r.fail(1)
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 3)

    let shown = try r.h.run(["rollout", "show", "--svg", "timeline.svg"])
    #expect(shown.status == 0, "\(shown.stderr)")
    let text = shown.stdout
    #expect(text.contains("of pool \(r.pool) (upgrade): demo@v1 → demo@v2, rolled-back after"), "\(text)")
    #expect(text.contains("\(r.pool)-1 (canary): rolled back"), "\(text)")
    #expect(text.contains("health") && text.contains("FAILED"), "\(text)")
    #expect(text.contains("rolling back:") && text.contains("(error budget 0 exceeded)"), "\(text)")
    #expect(text.contains("\(r.pool)-2 (wave 1): pending"), "later waves never started: \(text)")
    let id = try #require(text.split(separator: " ").dropFirst().first.map(String.init))
    #expect(try r.h.run(["rollout", "show", id]).stdout.trimmingCharacters(in: .newlines) == text.components(separatedBy: "\n\nDrew").first)
    #expect(try r.h.run(["rollout", "show", "nope-1"]).stderr.contains("no rollout nope-1"))

    // Rendered by librsvg: a valid image of the drawn size.
    let svg = r.h.dir.appendingPathComponent("timeline.svg").path
    let png = r.h.dir.appendingPathComponent("timeline.png").path
    let render = Process()
    render.executableURL = URL(fileURLWithPath: "/usr/bin/rsvg-convert")
    render.arguments = [svg, "-o", png]
    try render.run()
    render.waitUntilExit()
    #expect(render.terminationStatus == 0)
    let image = try Data(contentsOf: URL(fileURLWithPath: png))
    #expect(image.count > 1000 && image.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "a PNG")
    let widthBytes = image.subdata(in: 16..<20)
    #expect(widthBytes.reduce(0) { $0 << 8 | Int($1) } == 900)

    let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: svg)))
    let elements = Elements()
    parser.delegate = elements
    #expect(parser.parse())
    let bars = elements.found.filter { $0.name == "rect" && $0.attributes["class"] == "bar" }
    let nodes = Set(bars.compactMap { $0.attributes["data-node"] })
    #expect(nodes == ["\(r.pool)-1"], "only the canary ran: \(nodes)")
    #expect(bars.contains { $0.attributes["data-step"] == "health" && $0.attributes["data-outcome"] == "failed" && $0.attributes["fill"] == "#c62828" })
    #expect(bars.contains { $0.attributes["data-step"] == "remove-failed" && $0.attributes["data-outcome"] == "done" }, "the failed canary removed")
    #expect(bars.filter { $0.attributes["data-outcome"] == "done" }.allSatisfy { ["#2e7d32", "#ef6c00"].contains($0.attributes["fill"] ?? "") })
    #expect(elements.found.filter { $0.name == "line" && $0.attributes["class"] == "budget" }.count == 1, "the budget line")
    #expect(elements.found.filter { $0.name == "line" && $0.attributes["class"] == "wave" }.count == 2, "canary and wave 1")
    #expect(elements.found.filter { $0.name == "text" && $0.attributes["class"] == "node" }.count == 3, "a row per node")
    try r.cleanup()
  }

  /// `rollout status --watch` follows a rollout another process runs until it ends.
  @Test func rolloutStatusWatchFollowsARolloutToItsEnd() throws {
    let r = try RolloutHarness(replicas: 2, waves: "[1]")
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    try "".write(to: r.h.dir.appendingPathComponent("hold"), atomically: true, encoding: .utf8)
    let apply = try r.h.start(["apply", "--auto-approve"])
    var running = false
    for _ in 0..<300 where !running {
      running = try r.h.run(["rollout", "status", r.pool]).stdout.contains(": running")
      if !running { Thread.sleep(forTimeInterval: 0.1) }
    }
    #expect(running)
    let out = Pipe()
    let watcher = try r.h.start(["rollout", "status", "--watch", "--interval", "100ms", "--watch-timeout", "2m", r.pool], output: out)
    let seen = Mutex(Data())
    let reader = Thread {
      while true {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { return }
        seen.withLock { $0.append(chunk) }
      }
    }
    reader.start()
    // The gate opens once the watcher has shown the held canary (an event, not a time: under
    // load its first read came after a fixed half second).
    for _ in 0..<600 where !String(decoding: seen.withLock { $0 }, as: UTF8.self).contains("now: \(r.pool)-1 health") {
      Thread.sleep(forTimeInterval: 0.05)
    }
    try "".write(to: r.h.dir.appendingPathComponent("gate"), atomically: true, encoding: .utf8)
    #expect(ProcessLiveness.isGone(watcher.processIdentifier, within: 60))
    #expect(ProcessLiveness.isGone(apply.processIdentifier, within: 60))
    watcher.waitUntilExit()
    while reader.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
    let text = String(decoding: seen.withLock { $0 }, as: UTF8.self)
    #expect(watcher.terminationStatus == 0, "\(text)")
    #expect(text.contains(": running") && text.contains("now: \(r.pool)-1 health") && text.contains(": completed"), "\(text)")
    #expect(text.components(separatedBy: "[").count >= 3, "a new block per change: \(text)")
    try r.cleanup()
  }

  /// A rollout whose apply died is not followed until the timeout: nobody holds its lock.
  @Test func watchEndsAtOnceWhenNoProcessRunsTheRollout() throws {
    let r = try RolloutHarness(replicas: 2, waves: "[1]")
    #expect(try r.h.run(["apply", "--auto-approve"]).status == 0)
    try r.setImage("demo@v2")
    #expect(try r.h.run(["apply", "--auto-approve"], environment: ["DROVER_CRASH_AT": "step-done:create"]).status != 0)
    let watch = try r.h.run(["rollout", "status", "--watch", "--interval", "100ms", "--watch-timeout", "2m", r.pool])
    #expect(watch.status == 3 && watch.stdout.contains("no process runs it") && watch.stdout.contains("drover rollout resume \(r.pool)"), "\(watch.stdout)\(watch.stderr)")
    #expect(try r.h.run(["rollout", "pause", r.pool]).status == 0)
    let paused = try r.h.run(["rollout", "status", "--watch", "--interval", "100ms", r.pool])
    #expect(paused.status == 3, "a paused rollout does not move: \(paused.stdout)")
    // (The abort rolls the replaced node back: it ends the rollout as rolled back, exit 3.)
    #expect(try [0, 3].contains(r.h.run(["rollout", "abort", r.pool]).status))
    try r.cleanup()
  }
}
