import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #44: `window:` and the mapping form of `error_budget:` as written — bad values are located errors.
@Suite struct WindowSpecTests {
  func load(_ extra: String) -> (PoolSpec?, [Diagnostic]) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 2\nimage: demo@v1\n\(extra)"
    let (set, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    return (set.pools.first?.spec, diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" })
  }

  @Test func aWindowReadsInItsZone() throws {
    let (pool, errors) = load(
      """
      window:
        days: [sat, sun]
        start: "22:00"
        end: "04:30"
        timezone: Europe/Berlin
        exclusions:
          - {from: "2026-12-24T00:00", to: "2026-12-27T00:00", reason: christmas}

      """)
    #expect(errors.isEmpty, "\(errors)")
    let w = try #require(pool?.window)
    #expect(w.days == [6, 7] && w.start == 22 * 60 && w.end == 4 * 60 + 30 && w.timezone == "Europe/Berlin")
    #expect(w.exclusions == [.init(from: 1_798_066_800, to: 1_798_326_000, reason: "christmas")], "local midnight in Berlin is 23:00 UTC")
  }

  @Test(arguments: [
    ("window: {start: \"25:00\", end: \"04:00\"}\n", "spec.window.time"),
    ("window: {start: \"02:00\", end: \"04:00\", timezone: Mars/Olympus}\n", "spec.window.timezone"),
    ("window: {start: \"02:00\", end: \"04:00\", days: [someday]}\n", "spec.window.day"),
    ("window: {start: \"02:00\", end: \"02:00\"}\n", "spec.window.empty"),
    ("window: {start: \"02:00\", end: \"04:00\", exclusions: [{from: \"2026-12-27\", to: \"2026-12-24\"}]}\n", "spec.window.exclusion"),
    ("error_budget: {nodes: 1, slo: {good: 'up', total: 'up', objective: 99.9%}, max_burn_rate: [{long: 1h, short: 5m, factor: 14.4}]}\n", "spec.budget.query"),
    ("error_budget: {slo: {good: 'a[{{window}}]', total: 'b[{{window}}]', objective: 100%}, max_burn_rate: [{long: 1h, short: 5m, factor: 2}]}\n", "spec.budget.objective"),
    ("error_budget: {slo: {good: 'a[{{window}}]', total: 'b[{{window}}]', objective: 99%}, max_burn_rate: [{long: 5m, short: 1h, factor: 2}]}\n", "spec.budget.rule"),
  ] as [(String, String)])
  func badWindowsAndBudgetsAreLocatedErrors(_ yaml: String, _ code: String) {
    let (_, errors) = load(yaml)
    #expect(errors.contains { $0.code == code && $0.location?.start.line == 5 }, "\(errors.map { "\($0.code) \($0.message) \($0.location?.start.line ?? 0)" })")
  }

  @Test func theBudgetKeepsItsScalarFormAndGainsAnSLO() throws {
    #expect(load("error_budget: 2\n").0?.errorBudget == .count(2))
    let (pool, errors) = load(
      """
      error_budget:
        nodes: 1
        slo: {good: 'sum(rate(ok_total[{{window}}]))', total: 'sum(rate(all_total[{{window}}]))', objective: 99.9%, window: 30d}
        max_burn_rate: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
        max_wait: 20m

      """)
    #expect(errors.isEmpty, "\(errors)")
    #expect(pool?.errorBudget == .count(1))
    let gate = try #require(pool?.burnRate)
    #expect(abs(gate.objective - 0.999) < 1e-12 && gate.rules.count == 2 && gate.maxWait == .minutes(20) && gate.rules[0].factor == 14.4)
  }
}

/// #44: drover.yaml's `window:` is every pool's default; a pool's own wins; `max_wait` is read.
@Suite struct DefaultWindowTests {
  @Test func drover_yamlsWindowIsTheDefaultAndAPoolsOwnWins() throws {
    let (settings, problems) = ProjectFile.decode(
      SpecSource(path: "drover.yaml", kind: .project, bytes: Array("project: p\nwindow: {start: \"01:00\", end: \"04:00\", max_wait: 2h}\n".utf8)))
    #expect(problems.isEmpty, "\(problems)")
    let window = try #require(settings?.window)
    #expect(window.maxWait == .minutes(120) && window.start == 60 && window.end == 240)
    let sources = [
      SpecSource(path: "pools/a.yaml", kind: .pool, bytes: Array("name: a\nhosts: [test:///default]\nreplicas: 1\nimage: demo@v1\n".utf8)),
      SpecSource(
        path: "pools/b.yaml", kind: .pool,
        bytes: Array("name: b\nhosts: [test:///default]\nreplicas: 1\nimage: demo@v1\nwindow: {start: \"22:00\", end: \"23:00\"}\n".utf8)),
    ]
    let (set, errors) = SpecLoader.load(sources, defaultWindow: window)
    #expect(errors.filter { $0.severity == .error && $0.code != "spec.image.unknown" }.isEmpty, "\(errors)")
    let byName = Dictionary(uniqueKeysWithValues: set.poolSpecs.map { ($0.name, $0) })
    #expect(byName["a"]?.window == window, "no window of its own: the project's")
    #expect(byName["b"]?.window?.start == 22 * 60 && byName["b"]?.window?.maxWait == MaintenanceWindow.defaultMaxWait, "its own wins")
  }
}
