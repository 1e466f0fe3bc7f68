import Foundation
import Testing

/// #22.2: a rollout you can follow: one timed line per step with the hook's output indented under
/// it, a line every 10 s while a health check is awaited (what, and for how long), and a failed
/// canary naming its check and its console log.
@Suite struct RolloutProgressTests {
  @Test func stepsAreTimedHooksShownAndAHealthWaitSaysSo() throws {
    let h = try CLIHarness()
    let pool = CLIHarness.unique("pg")
    let script = h.dir.appendingPathComponent("slow.sh").path
    // Healthy only 13 s after its first probe of the new image (whole seconds of `date +%s`:
    // at least 12 s, so the 10 s progress line always comes first).
    try """
      #!/bin/sh
      [ "$DROVER_IMAGE" = demo@v2 ] || exit 0
      f="\(h.dir.path)/first-probe"
      [ -e "$f" ] || date +%s > "$f"
      [ $(( $(date +%s) - $(cat "$f") )) -ge 13 ]
      """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    let spec = """
      health: [{type: command, command: ["\(script)"], timeout: 40s, interval: 250ms, retries: 0}]
      drain:
        type: command
        cordon: ["/bin/sh", "-c", "echo cordoning $DROVER_NODE; printf 'second line\\\\033[2J\\\\n'"]
        timeout: 5s
      upgrade: {canary: 1, waves: [1], max_surge: 1, max_unavailable: 0, health_timeout: 40s}

      """
    try h.writePool(pool, replicas: 1, extra: spec)
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    try h.writePool(pool, replicas: 1, image: "demo@v2", extra: spec)
    let run = try h.run(["apply", "--auto-approve"])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    let out = run.stdout
    for step in ["cordon", "drain", "create", "health", "remove-old", "uncordon"] {
      #expect(out.range(of: #"\] \#(pool)-1: \#(step) done \(\d+\.\d\ds\)"#, options: .regularExpression) != nil, "\(step): \(out)")
    }
    #expect(out.contains("\n            | cordoning \(pool)-1\n            | second line?[2J"), "the hook's output under its step, escapes made safe: \(out)")
    // (10 s in, or a little later on a loaded machine: the line comes with the first probe after.)
    #expect(out.range(of: #"\#(pool)-1 \(new domain \#(pool)-1-g2\): still waiting for command check \#(script): 1\ds of 40s"#, options: .regularExpression) != nil, "\(out)")

    // A canary that fails names its check and its console log.
    try h.writePool(pool, replicas: 1, image: "demo@v1", extra: spec.replacingOccurrences(of: "health_timeout: 40s", with: "health_timeout: 2s") + "error_budget: 0\n")
    try "#!/bin/sh\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
    let failed = try h.run(["apply", "--auto-approve"])
    #expect(failed.status == 3)
    #expect(failed.stdout.contains("FAILED: command check \(script) failed") && failed.stdout.contains("; console log: /"), "\(failed.stdout)")
    try h.writePool(pool, replicas: 0)
    _ = try h.run(["apply", "--auto-approve"])
  }
}
