import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #36: the remediation ladder's keys decode to plain values, and bad ones are located errors.
@Suite struct RemediationSpecTests {
  func load(_ remediation: String) -> (RemediationSpec?, [Diagnostic]) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 2\nimage: demo@v1\nremediation: \(remediation)\n"
    let (set, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    return (set.pools.first?.spec.remediation, diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" })
  }

  @Test func theLadderDefaultsToEveryRungGentlestFirst() throws {
    let (r, errors) = load("{unhealthy_after: 1m}")
    #expect(errors.isEmpty, "\(errors)")
    #expect(r?.actions == [.resume, .start, .reset, .replace] && r?.repairAfter == .seconds(0) && r?.repairGrace == .seconds(120))
  }

  @Test func actionsAreUsedGentlestFirstWhateverTheirOrder() throws {
    let (r, errors) = load("{actions: [replace, start], repair_after: 30s, repair_grace: 45s}")
    #expect(errors.isEmpty, "\(errors)")
    #expect(r?.actions == [.start, .replace] && r?.repairAfter == .seconds(30) && r?.repairGrace == .seconds(45))
  }

  @Test(arguments: [
    ("{actions: [resume, rebuild]}", "unknown remediation action 'rebuild'", 33),
    ("{actions: [start, start]}", "remediation action 'start' is listed twice", 32),
    ("{actions: []}", "actions must name at least one of: resume, start, reset, replace", 24),
    ("{actions: reset}", "actions must be a list", 24),
    ("{repair_grace: 500ms}", "repair_grace must be at least 1s", 29),
  ] as [(String, String, Int)])
  func badKeysAreLocated(_ text: String, _ message: String, _ column: Int) {
    let (_, errors) = load(text)
    #expect(errors.contains { $0.message.contains(message) && $0.location?.start.line == 5 && $0.location?.start.column == column }, "\(errors.map { "\($0.location?.start.column ?? 0) \($0.message)" })")
  }

  @Test func aHostEntrySetsItsOutageThreshold() {
    let (ok, problems) = ProjectFile.decode(
      SpecSource(path: "drover.yaml", kind: .project, bytes: Array("project: p\nhosts:\n  - {name: a, uri: \"qemu:///system\", outage_threshold: 75%}\n".utf8)))
    #expect(problems.isEmpty && ok?.hosts.first?.outageThreshold == 0.75, "\(problems)")
    let (_, bad) = ProjectFile.decode(
      SpecSource(path: "drover.yaml", kind: .project, bytes: Array("project: p\nhosts:\n  - {name: a, uri: \"qemu:///system\", outage_threshold: 3}\n".utf8)))
    #expect(bad.contains { $0.message.contains("outage_threshold must be a percentage") && $0.location?.start.line == 3 }, "\(bad)")
  }
}
