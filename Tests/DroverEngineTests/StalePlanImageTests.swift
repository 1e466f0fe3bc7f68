import DroverEngine
import DroverPlan
import Testing

/// What a saved plan's images and project are checked against (pure): each difference named.
@Suite struct StalePlanImageTests {
  @Test func imageChangesAreNamed() {
    let saved = ["demo@v1": "aaaaaaaaaaaaaaaa", "demo@v2": "", "base@v1": "cccccccccccccccc", "same@v1": "dddd"]
    let current = ["demo@v1": "bbbbbbbbbbbbbbbb", "demo@v2": "eeeeeeeeeeeeeeee", "base@v1": "", "same@v1": "dddd"]
    #expect(
      StalePlanCheck.imageChanges(saved: saved, current: current) == [
        "image base@v1 (sha256:cccccccccccc) is not in this machine's image catalogue",
        "image demo@v1 was rebaked since the plan was saved: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb",
        "image demo@v2 was baked since the plan was saved (now sha256:eeeeeeeeeeee)",
      ])
    #expect(StalePlanCheck.imageChanges(saved: saved, current: saved).isEmpty)
    #expect(StalePlanCheck.imageChanges(saved: ["gone@v1": "x"], current: [:]).isEmpty, "a pool no longer using it is the specs' change")
  }

  @Test func anotherProjectsPlanIsRefused() {
    let world = WorldFingerprint(hosts: [:])
    var saved = Plan(actions: [], specDigest: "s", world: world)
    saved.project = "web-fleet"
    var current = saved
    current.project = "other"
    let found = StalePlanCheck.check(saved: saved, current: current)
    #expect(found.map(\.code) == ["plan.project"] && found.first?.message == "the plan was made for project web-fleet; this checkout is project other")
    current.project = "web-fleet"
    current.images = ["demo@v1": "new"]
    saved.images = ["demo@v1": "old"]
    #expect(StalePlanCheck.check(saved: saved, current: current).map(\.code) == ["plan.stale-image"])
  }
}
