import Foundation
import Testing

/// #16: drain hooks and command health checks run as Drover's user at apply, so a change to them
/// is shown by `plan`, and a saved plan pins them.
@Suite struct HookVisibilityTests {
  @Test func aChangedHookIsShownAndASavedPlanPinsIt() throws {
    let r = try RolloutHarness()
    let h = r.h
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    let evil = "echo pwned >> \(h.dir.path)/pwned"
    r.spec = r.spec.replacingOccurrences(of: "cordon: [\"/bin/sh\", \"-c\", \"echo cordon", with: "cordon: [\"/bin/sh\", \"-c\", \"\(evil); echo cordon")
    try r.setImage("demo@v1")
    let plan = try h.run(["plan", "--detailed-exitcode", "--out", "plans/hooks.plan"])
    #expect(plan.status == 2, "\(plan.stdout)\(plan.stderr)")
    #expect(plan.stdout.contains("the programs this pool runs on this machine changed"), "\(plan.stdout)")
    #expect(plan.stdout.contains("Programs pool \(r.pool) runs on this machine during this apply") && plan.stdout.contains(evil), "\(plan.stdout)")
    // The saved plan pins the hooks: another change after it was saved makes it stale.
    r.spec = r.spec.replacingOccurrences(of: evil, with: evil + " again")
    try r.setImage("demo@v1")
    let stale = try h.run(["apply", "plans/hooks.plan"])
    #expect(stale.status == 1 && stale.stderr.contains("the pool specs changed since the plan was saved"), "\(stale.stderr)")
    #expect(!FileManager.default.fileExists(atPath: h.dir.appendingPathComponent("pwned").path), "no hook ran")
    #expect(try h.run(["apply", "--auto-approve"]).status == 0)
    #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0, "recorded: no change any more")
    try r.cleanup()
  }
}
