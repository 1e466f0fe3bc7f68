import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import DroverPrometheus
import DroverRollout
import Foundation
import Synchronization
import Testing

/// #43 end to end, in-process: rollouts on the fake host whose analysis gates query a **real
/// Prometheus** (Debian's, started for each test on loopback) scraping the fixture exporter, which
/// stands for the service: per-node request and error counters whose error ratio each test sets.
@Suite(.serialized, .enabled(if: PrometheusFixture.installed, "needs Debian's prometheus (run scripts/setup)"))
struct AnalysisGateTests {
  typealias R = RolloutRunnerFakeHostTests

  /// The service's error ratio of the step's new nodes, per node: under 5 %.
  static let errorRatio = AnalysisGate(
    name: "error-ratio",
    query: "sum by (node) (rate(app_errors_total{node=~\"{{nodes}}\"}[5s])) / sum by (node) (rate(app_requests_total{node=~\"{{nodes}}\"}[5s]))",
    expect: .perNode, condition: AnalysisCondition(op: .less, value: 0.05), interval: .seconds(1), consecutiveErrors: 3)

  static func fleet(gates: [AnalysisGate] = [errorRatio], soak: TimeSpan = .seconds(3)) throws -> R.Fleet {
    var strategy = R.surge
    strategy.soak = soak
    strategy.analysis = gates
    let fleet = try R.Fleet(replicas: 3, strategy: strategy)
    fleet.pool.image = ImageRef(parsing: "demo@v2")!
    return fleet
  }

  static func run(_ fleet: R.Fleet, _ prometheus: PrometheusFixture, onEvent: @escaping @Sendable (RolloutEvent) -> Void = { _ in }) throws -> RolloutOutcome {
    let preview = try #require(try fleet.plan().rollouts.first)
    return try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(
        prober: FakeProber(), drainer: fleet.drainer,
        onEvent: onEvent, metrics: try PrometheusClient(url: prometheus.url, timeout: 3))
    ).run(preview)
  }

  /// A rollout whose Prometheus goes away after the canary's first measurement.
  static func runLosingPrometheus(_ fleet: R.Fleet, _ prometheus: PrometheusFixture) throws -> RolloutOutcome {
    let events = EventLog()
    return try run(fleet, prometheus) { e in
      events.add(e)
      if e.kind == .measurement, events.all.filter({ $0.kind == .measurement }).count == 1 { prometheus.stopPrometheus() }
    }
  }

  /// What the next `apply` does with a paused rollout: its plan resumes it, with the gates' Prometheus.
  static func resume(_ fleet: R.Fleet, _ prometheus: PrometheusFixture, paused id: String) throws -> RolloutOutcome {
    let resumed = try #require(try fleet.plan().rollouts.first)
    #expect(resumed.resumes == id)
    return try RolloutRunner(
      pool: fleet.pool, project: R.project, backends: [R.uri: fleet.host], journal: try fleet.journal(),
      hooks: .init(prober: FakeProber(), drainer: fleet.drainer, metrics: try PrometheusClient(url: prometheus.url, timeout: 3))
    ).run(resumed)
  }

  static let allNodes = ["web-1", "web-2", "web-3", "web-1-g2", "web-2-g2", "web-3-g2"]

  @Test func aHealthyCanaryAndWavesPassTheGateAndEveryValueIsJournaled() throws {
    let prometheus = try PrometheusFixture.start(ratios: Dictionary(uniqueKeysWithValues: Self.allNodes.map { ($0, 0.001) }))
    defer { prometheus.stop() }
    // A second gate over the spec's own node variables: one regex of the step's domains.
    let total = AnalysisGate(
      name: "step-errors", query: "sum(rate(app_errors_total{node=~\"{{domain}}\"}[5s])) / sum(rate(app_requests_total{node=~\"{{hostname}}\"}[5s]))",
      condition: AnalysisCondition(op: .less, value: 0.05), interval: .seconds(1))
    let fleet = try Self.fleet(gates: [Self.errorRatio, total])
    let events = EventLog()
    let before = prometheus.queries()
    let outcome = try Self.run(fleet, prometheus) { events.add($0) }
    #expect(outcome.state.status == .completed, "\(outcome.summary)")
    #expect(fleet.shape == ["web-1-g2 g2 demo@v2", "web-2-g2 g2 demo@v2", "web-3-g2 g2 demo@v2"])
    let measured = outcome.state.measurements
    #expect(Set(measured.map(\.wave)) == [0, 1], "the canary and the wave were each judged: \(measured.map(\.wave))")
    #expect(measured.allSatisfy { $0.verdict == .pass }, "\(measured.map(\.why))")
    let canary = measured.filter { $0.wave == 0 && $0.gate == "error-ratio" }
    #expect(canary.first?.values.keys.sorted() == ["web-1-g2"], "the canary's own series, by its hostname")
    #expect(canary.first?.query.contains("node=~\"web-1-g2\"") == true, "the resolved query is kept: \(canary.first?.query ?? "")")
    #expect(measured.first { $0.gate == "step-errors" && $0.wave == 1 }?.query.contains("node=~\"web-2-g2|web-3-g2\"") == true, "node variables are the step's values")
    // One query per interval per gate: a 3 s soak at 1 s intervals is at most 4 measurements a wave.
    for wave in [0, 1] {
      for gate in ["error-ratio", "step-errors"] {
        let n = measured.filter { $0.wave == wave && $0.gate == gate }.count
        #expect((2...5).contains(n), "\(n) measurements of \(gate) in wave \(wave)")
      }
    }
    let queries = prometheus.queries() - before
    #expect(queries - 1 == measured.count, "one query per measurement (and one pre-flight): \(queries) for \(measured.count)")
    #expect(events.all.contains { $0.kind == .measurement && $0.measurement != nil })
    #expect(outcome.state.analyzed[0]?.hasPrefix("passed") == true && outcome.state.analyzed[1]?.hasPrefix("passed") == true)
  }

  @Test func aCanaryThatRaisesTheErrorRatioFailsTheGateAndThePoolRollsBack() throws {
    var ratios = Dictionary(uniqueKeysWithValues: Self.allNodes.map { ($0, 0.001) })
    ratios["web-1-g2"] = 0.4
    let prometheus = try PrometheusFixture.start(ratios: ratios)
    defer { prometheus.stop() }
    let fleet = try Self.fleet()
    let outcome = try Self.run(fleet, prometheus)
    #expect(outcome.state.status == .rolledBack, "\(outcome.summary)")
    let why = outcome.state.failed["web-1"] ?? ""
    #expect(why.contains("analysis") && why.contains("error-ratio") && why.contains("web-1-g2: 0.4"), "the measured value is named: \(why)")
    // The canary had replaced web-1 entirely (surge, then the old one went): rolled back, it is
    // rebuilt on v1 as the next generation.
    #expect(fleet.shape == ["web-1 g3 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"], "\(fleet.shape)")
    #expect(outcome.state.measurements.contains { $0.verdict == .fail && ($0.values["web-1-g2"] ?? 0) > 0.3 }, "\(outcome.state.measurements.map { "\($0.query) → \($0.why)" })")
    // The failure is in the sealed journal, record by record.
    let records = try fleet.journal().records()
    #expect(records.contains { $0.event == .measured && ($0.detail ?? "").contains("\"fail\"") })
    #expect(records.contains { $0.event == .analyzed && ($0.detail ?? "").hasPrefix("failed") })
  }

  @Test func prometheusDownBeforeTheRolloutRefusesItBeforeAnyNode() throws {
    let prometheus = try PrometheusFixture.start(ratios: [:])
    prometheus.stopPrometheus()
    defer { prometheus.stop() }
    let fleet = try Self.fleet()
    #expect {
      _ = try Self.run(fleet, prometheus)
    } throws: { error in
      (error as? Diagnostic)?.code == "analysis.unreachable" && Diagnostic.line(of: error).contains("no node was touched")
    }
    #expect(fleet.shape == ["web-1 g1 demo@v1", "web-2 g1 demo@v1", "web-3 g1 demo@v1"])
    #expect(try fleet.journal().records().isEmpty, "no rollout was journaled")
  }

  /// Down mid-soak: retried with backoff, then paused — nothing rolled back, the canary stays;
  /// back up, the rollout resumes, judges the canary again and completes.
  @Test func prometheusDownMidSoakPausesAndTheRolloutResumesAfterItReturns() throws {
    let prometheus = try PrometheusFixture.start(ratios: Dictionary(uniqueKeysWithValues: Self.allNodes.map { ($0, 0.001) }))
    defer { prometheus.stop() }
    let fleet = try Self.fleet(soak: .seconds(4))
    let paused = try Self.runLosingPrometheus(fleet, prometheus)
    #expect(paused.state.status == .paused, "\(paused.summary)")
    #expect(paused.state.rolledBack.isEmpty && paused.state.failed.isEmpty, "a backend down is not a bad metric")
    #expect(fleet.shape.contains("web-1-g2 g2 demo@v2"), "the canary stays: \(fleet.shape)")
    let errors = paused.state.measurements.filter { $0.verdict == .error }
    #expect(errors.count == 3, "consecutive_errors 3: \(paused.state.measurements.map(\.why))")
    try prometheus.startPrometheus()
    let outcome = try Self.resume(fleet, prometheus, paused: paused.state.id)
    #expect(outcome.state.status == .completed, "\(outcome.summary)")
    #expect(outcome.state.analyzed[0]?.hasPrefix("passed") == true)
  }
}

final class EventLog: @unchecked Sendable {
  private let events = Mutex<[RolloutEvent]>([])
  func add(_ e: RolloutEvent) { events.withLock { $0.append(e) } }
  var all: [RolloutEvent] { events.withLock { $0 } }
}

extension AnalysisGateTests {
  /// Going back needs no metrics: a rollout paused because Prometheus went away is aborted — and
  /// rolled back — while Prometheus is still down.
  @Test func anAbortRollsBackWithPrometheusStillDown() throws {
    let prometheus = try PrometheusFixture.start(ratios: Dictionary(uniqueKeysWithValues: Self.allNodes.map { ($0, 0.001) }))
    defer { prometheus.stop() }
    let fleet = try Self.fleet(soak: .seconds(4))
    let paused = try Self.runLosingPrometheus(fleet, prometheus)
    #expect(paused.state.status == .paused, "\(paused.summary)")
    try fleet.journal().append(paused.state.id, .abortRequested)
    let outcome = try Self.resume(fleet, prometheus, paused: paused.state.id)
    #expect(outcome.state.status == .rolledBack, "\(outcome.summary)")
    #expect(fleet.shape.allSatisfy { $0.hasSuffix("demo@v1") }, "\(fleet.shape)")
  }
}

/// An https Prometheus is trusted through the CA the machine names for it — and only then: a
/// server signed by another CA, or the system's roots, is an answer `.error` (a pause), never a pass.
@Suite(.serialized, .enabled(if: PrometheusFixture.installed && FileManager.default.fileExists(atPath: PrometheusFixture.tls + "/ca.pem")))
struct PrometheusTLSTests {
  @Test func anHTTPSPrometheusIsTrustedThroughItsCAAlone() throws {
    let prometheus = try PrometheusFixture.start(ratios: [:], environment: ["PROMETHEUS_TLS": PrometheusFixture.tls])
    defer { prometheus.stop() }
    let url = "https://127.0.0.1:\(prometheus.port)"
    let trusted = try PrometheusClient(url: url, caFile: PrometheusFixture.tls + "/ca.pem", timeout: 5)
    #expect(trusted.query("vector(1)") == .vector([.init(labels: [:], value: 1)]))
    let other = try PrometheusClient(url: url, caFile: PrometheusFixture.tls + "/other-ca.pem", timeout: 5)
    guard case .error(let why) = other.query("vector(1)") else { Issue.record("another CA's server was trusted"); return }
    #expect(!why.isEmpty)
    let system = try PrometheusClient(url: url, timeout: 5)
    if case .error = system.query("vector(1)") {} else { Issue.record("the system's roots trusted a test CA") }
    let plain = try PrometheusClient(url: "http://127.0.0.1:\(prometheus.port)", timeout: 5)
    if case .error = plain.query("vector(1)") {} else { Issue.record("plain HTTP to a TLS server answered") }
  }
}

/// A Prometheus and the fixture exporter for one test (`Tests/Fixtures/prometheus`).
final class PrometheusFixture: @unchecked Sendable {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/prometheus")
  static let installed = FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus")
  /// The test CA `scripts/setup` made for the TLS PostgreSQL (a certificate for 127.0.0.1).
  static let tls = "/var/lib/drover/postgres-test-tls"
  let dir: String
  let port: Int
  var url: String { "http://127.0.0.1:\(port)" }

  private init(dir: String, port: Int) {
    self.dir = dir
    self.port = port
  }

  static func start(ratios: [String: Double], environment: [String: String] = [:]) throws -> PrometheusFixture {
    let dir = "/tmp/drover-prometheus-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try write(ratios, into: dir)
    // Port 0: the fixture picks free ports and says which.
    let result = HookRunner.run(
      ["/usr/bin/env"] + environment.map { "\($0.key)=\($0.value)" } + ["/bin/bash", fixtures.appendingPathComponent("start.sh").path, dir, "0"], timeout: 60)
    let port = (try? String(contentsOfFile: dir + "/port", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    guard result.status == 0, let port else {
      _ = HookRunner.run(["/bin/bash", fixtures.appendingPathComponent("stop.sh").path, dir], timeout: 30)
      throw SlurmError(message: "prometheus did not start: \(result.output)")
    }
    return PrometheusFixture(dir: dir, port: port)
  }

  static func write(_ ratios: [String: Double], into dir: String) throws {
    try JSONSerialization.data(withJSONObject: ratios).write(to: URL(fileURLWithPath: dir + "/ratios.json.tmp"))
    _ = rename(dir + "/ratios.json.tmp", dir + "/ratios.json")
  }

  func stopPrometheus() { _ = HookRunner.run(["/bin/bash", Self.fixtures.appendingPathComponent("stop.sh").path, dir, "prometheus"], timeout: 30) }

  func startPrometheus() throws {
    let result = HookRunner.run(["/bin/bash", Self.fixtures.appendingPathComponent("start.sh").path, dir, "\(port)", "prometheus"], timeout: 60)
    guard result.status == 0 else { throw SlurmError(message: "prometheus did not start again: \(result.output)") }
  }

  /// Queries Prometheus answered through its HTTP API so far (its own counter, this run's).
  func queries() -> Int {
    let out = HookRunner.run(["curl", "-fsS", "\(url)/metrics"], timeout: 10).output
    let line = out.split(separator: "\n").first { $0.hasPrefix("prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query\"}") }
    return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? -1
  }

  func stop() {
    _ = HookRunner.run(["/bin/bash", Self.fixtures.appendingPathComponent("stop.sh").path, dir], timeout: 30)
    try? FileManager.default.removeItem(atPath: dir)
  }
}

/// The key the machine's configuration names a metrics server's CA under: `host:port`, the
/// scheme's port filled in, an IPv6 host bracketed (as a state server's is).
@Suite struct MetricsServerKeyTests {
  @Test func aURLNamesItsServerAsTheMachineConfigurationKeysIt() {
    #expect(PrometheusClient.server(of: "https://prometheus.example") == "prometheus.example:443")
    #expect(PrometheusClient.server(of: "http://127.0.0.1:9090/prom") == "127.0.0.1:9090")
    #expect(PrometheusClient.server(of: "https://[::1]:9443") == "[::1]:9443")
    #expect(PrometheusClient.server(of: "not a url") == nil)
  }
}
