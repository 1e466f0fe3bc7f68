import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #45: `upgrade.keep_previous` (a count or a percentage, or `{nodes, for, shutdown_timeout}`)
/// and the pool's `capacity:` as written; bad values are located errors.
@Suite struct KeepPreviousSpecTests {
  func load(_ extra: String) -> (PoolSpec?, [Diagnostic]) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 4\nimage: demo@v1\n\(extra)"
    let (set, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    return (set.pools.first?.spec, diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" })
  }

  @Test func theFormsRead() throws {
    #expect(load("upgrade: {keep_previous: 2}\n").0?.upgrade.keepPrevious == KeepPrevious(nodes: .count(2)))
    #expect(load("upgrade: {keep_previous: 50%}\n").0?.upgrade.keepPrevious?.nodes == .percent(50))
    let (pool, errors) = load("upgrade: {keep_previous: {nodes: 3, for: 2h, shutdown_timeout: 10s}}\ncapacity: disk-only\n")
    #expect(errors.isEmpty, "\(errors)")
    #expect(pool?.upgrade.keepPrevious == KeepPrevious(nodes: .count(3), duration: .minutes(120), shutdownTimeout: .seconds(10)))
    #expect(pool?.keptCapacity == .diskOnly)
    #expect(pool?.upgrade.keepPrevious?.state == .hibernated, "memory saved by default: a rollback resumes, no boot")
    #expect(load("upgrade: {keep_previous: {nodes: 1, state: stopped}}\n").0?.upgrade.keepPrevious?.state == .stopped)
    #expect(load("").0?.upgrade.keepPrevious == nil && load("").0?.keptCapacity == .reserve)
  }

  @Test(arguments: [
    ("upgrade: {keep_previous: -1}\n", "spec.type"),
    ("upgrade: {keep_previous: {for: 2h}}\n", "spec.missing-key"),
    ("upgrade: {keep_previous: {nodes: 1, for: 40d}}\n", "spec.range"),
    ("upgrade: {keep_previous: {nodes: 1, for: soon}}\n", "spec.unit"),
    ("upgrade: {keep_previous: {nodes: 1, forever: true}}\n", "spec.unknown-key"),
    ("capacity: all\n", "spec.type"),
    ("upgrade: {keep_previous: {nodes: 1, state: frozen}}\n", "spec.type"),
  ] as [(String, String)])
  func badValuesAreLocatedErrors(_ yaml: String, _ code: String) {
    let (_, errors) = load(yaml)
    #expect(errors.contains { $0.code == code && $0.location?.start.line == 5 }, "\(errors.map { "\($0.code) \($0.message) \($0.location?.start.line ?? 0)" })")
  }
}
