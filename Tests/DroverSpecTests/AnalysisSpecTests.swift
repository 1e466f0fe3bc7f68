import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #43: `upgrade.analysis` and `analysis.prometheus` as written — every bad value a located error.
@Suite struct AnalysisSpecTests {
  func load(_ analysis: String) -> (UpgradeStrategy?, [Diagnostic]) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 2\nimage: demo@v1\nupgrade:\n  soak: 30s\n  analysis:\n\(analysis)"
    let (set, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    return (set.pools.first?.spec.upgrade, diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" })
  }

  @Test func aGateReadsWithItsContract() throws {
    let (upgrade, errors) = load(
      """
          - name: error-ratio
            query: 'sum(rate(app_errors_total{node=~"{{nodes}}"}[1m])) / sum(rate(app_requests_total{node=~"{{nodes}}"}[1m]))'
            baseline: 'sum(rate(app_errors_total{node=~"{{old_nodes}}"}[1m])) / sum(rate(app_requests_total{node=~"{{old_nodes}}"}[1m]))'
            condition: "<= baseline * 1.2"
            interval: 15s
            failure_limit: 1
            consecutive_errors: 5
            success_after: 4
            on_empty: fail
            on_nan: inconclusive
            on_several_series: pass

      """)
    #expect(errors.isEmpty, "\(errors)")
    let gate = try #require(upgrade?.analysis.first)
    #expect(gate.condition == AnalysisCondition(op: .lessOrEqual, value: 1.2, relative: true))
    #expect(gate.interval == .seconds(15) && gate.failureLimit == 1 && gate.consecutiveErrors == 5 && gate.successAfter == 4)
    #expect(gate.onEmpty == .fail && gate.onNaN == .inconclusive && gate.onSeveralSeries == .pass && gate.expect == .scalar)
  }

  @Test(arguments: [
    ("    - {name: e, query: 'up{node=~\"{{host}}\"}', condition: '< 1'}\n", "spec.analysis.query", "{{host}} is not an analysis variable"),
    ("    - {name: e, query: 'up', condition: '0.5'}\n", "spec.analysis.condition", "must start with"),
    ("    - {name: e, query: 'up', condition: '< baseline'}\n", "spec.analysis.baseline", "no baseline query"),
    ("    - {name: e, query: 'up', condition: '< 1', on_nan: ignore}\n", "spec.type", "pass, fail, inconclusive"),
    ("    - {name: e, query: 'up', condition: '< 1', expect: vector}\n", "spec.type", "scalar, per_node"),
    ("    - {name: e, query: 'up', condition: '< 1', interval: 100ms}\n", "spec.range", "at least 1s"),
    ("    - {name: e, query: 'up', condition: '< 1', node_label: '9x'}\n", "spec.analysis.label", "not a Prometheus label"),
    ("    - {name: e, query: 'up', condition: '< 1'}\n    - {name: e, query: 'up', condition: '< 2'}\n", "spec.duplicate", "defined twice"),
    ("    - {name: e, query: 'up', condition: '< 1', treshold: 2}\n", "spec.unknown-key", "treshold"),
  ] as [(String, String, String)])
  func badGatesAreLocatedErrors(_ yaml: String, _ code: String, _ words: String) {
    let (_, errors) = load(yaml)
    #expect(errors.contains { $0.code == code && $0.message.contains(words) && ($0.location?.start.line ?? 0) >= 8 }, "\(errors.map { "\($0.code) \($0.message) \($0.location?.start.line ?? 0)" })")
  }

  @Test func thePrometheusIsNamedInTheProjectFile() {
    func project(_ analysis: String) -> (ProjectSettings?, [Diagnostic]) {
      ProjectFile.decode(SpecSource(path: "drover.yaml", kind: .project, bytes: Array("project: web\nanalysis: \(analysis)\n".utf8)))
    }
    #expect(project("{prometheus: http://127.0.0.1:9090/}").0?.prometheus == "http://127.0.0.1:9090")
    for bad in ["{prometheus: ftp://x}", "{prometheus: 'http://u:p@x:9090'}", "{prometheus: 'http://x/?q=1'}"] {
      #expect(project(bad).1.contains { $0.code == "spec.analysis.url" }, "\(bad)")
    }
  }

  @Test func theMachineNamesTheCAOfAnHTTPSPrometheus() {
    let yaml = "metrics:\n  127.0.0.1:9443: {ca: /etc/drover/prom-ca.pem}\n  nonsense: {ca: /x}\n  10.0.0.1:9090: {ca: relative.pem}\n"
    let (settings, problems) = MachineConfigFile.decode(SpecSource(path: "config.yaml", kind: .project, bytes: Array(yaml.utf8)))
    #expect(settings.metricsServers == ["127.0.0.1:9443": "/etc/drover/prom-ca.pem"])
    #expect(problems.contains { $0.code == "machine.metrics" && $0.location?.start.line == 3 }, "\(problems)")
    #expect(problems.contains { $0.code == "machine.path" && $0.location?.start.line == 4 }, "\(problems)")
  }
}
