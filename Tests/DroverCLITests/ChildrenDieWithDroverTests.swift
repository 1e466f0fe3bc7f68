import Foundation
import Testing

/// #37 part 5: a health check or drain hook started by a Drover that is killed (`kill -9`, the
/// OOM killer) must not outlive it. Each scenario kills `apply` while its child loops forever,
/// then waits for the child (and its own child) to end: the parent-death signal and the child's
/// supervisor stop them within about a second.
@Suite struct ChildrenDieWithDroverTests {
  @Test func aHealthCheckAndADrainHookEndWhenApplyIsKilled() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("cd")
    // A child that never ends by itself, as the one seen on CI: a loop around `sleep`, its pid
    // (and its current sleep's) written where the test can find them.
    func looper(_ name: String) throws -> String {
      let script = h.dir.appendingPathComponent("\(name).sh").path
      try """
        #!/bin/sh
        [ -e "\(h.dir.path)/hold-\(name)" ] || exit 0
        echo $$ > "\(h.dir.path)/\(name).pid"
        while :; do sleep 0.05; done
        """.write(toFile: script, atomically: true, encoding: .utf8)
      chmod(script, 0o755)
      return script
    }
    let health = try looper("health"), drain = try looper("drain")
    func write(_ image: String) throws {
      try h.writePool(
        pool, replicas: 1, image: image,
        extra: """
          health:
            - type: command
              command: ["\(health)"]
              timeout: 600s
          drain: {type: command, drain: ["\(drain)"], timeout: 600s}
          upgrade: {canary: 1, max_surge: 1, max_unavailable: 0, health_timeout: 600s}

          """)
    }
    defer {
      for name in ["hold-health", "hold-drain"] { try? FileManager.default.removeItem(at: h.dir.appendingPathComponent(name)) }
      try? FileManager.default.removeItem(at: h.dir.appendingPathComponent(".drover/journal"))
      try? h.writePool(pool, replicas: 0)
      _ = try? h.run(["apply", "--auto-approve"])
    }

    /// Starts `apply`, waits for `child` to write its pid, kills apply, and says whether the
    /// child (with everything in its process group) ended within a few seconds.
    func killApplyWhile(_ child: String) throws -> (started: Bool, gone: Bool) {
      try "".write(to: h.dir.appendingPathComponent("hold-\(child)"), atomically: true, encoding: .utf8)
      let pidFile = h.dir.appendingPathComponent("\(child).pid")
      try? FileManager.default.removeItem(at: pidFile)
      let apply = try h.start(["apply", "--auto-approve"])
      var pid: Int32?
      for _ in 0..<1200 where pid == nil {
        Thread.sleep(forTimeInterval: 0.05)
        pid = (try? String(contentsOf: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      }
      kill(apply.processIdentifier, SIGKILL)
      apply.waitUntilExit()
      try FileManager.default.removeItem(at: h.dir.appendingPathComponent("hold-\(child)"))
      guard let pid else { return (false, false) }
      let gone = ProcessLiveness.isGone(pid, within: 3)
      if !gone { kill(-getpgid(pid), SIGKILL) }
      return (true, gone)
    }

    try write("demo@v1")
    let checking = try killApplyWhile("health")
    #expect(checking.started, "apply ran the health check")
    #expect(checking.gone, "the health check ended with the apply that started it")

    #expect(try h.run(["apply", "--auto-approve"]).status == 0, "a second apply finishes the pool")
    try write("demo@v2")
    let draining = try killApplyWhile("drain")
    #expect(draining.started, "the rollout ran the drain hook")
    #expect(draining.gone, "the drain hook ended with the apply that started it")
  }
}
