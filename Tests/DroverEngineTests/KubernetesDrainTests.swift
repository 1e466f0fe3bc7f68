import DroverBasics
import DroverEngine
import DroverModel
import Foundation
#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif
import Testing

/// The Kubernetes drain back-end through the **real kubectl** — the machine's 1.32 and Debian's
/// 1.20 — against a Kubernetes API server **stand-in** (`Tests/Fixtures/kube-apiserver-standin`:
/// no real API server can run here), which answers the calls kubectl makes the way the API server
/// does: discovery, node get/patch, pods by node, the eviction subresource answering 429 while a
/// PodDisruptionBudget forbids it. What is checked is the server's side (the node's
/// `unschedulable`, the pods evicted) and what Drover makes of kubectl's real output.
@Suite(.serialized) struct KubernetesDrainTests {
  static let clients: [String] = ["/usr/bin/kubectl", "/var/lib/drover/kubectl-1.20/usr/bin/kubectl"].filter {
    FileManager.default.isExecutableFile(atPath: $0)
  }

  static func node(_ name: String) -> NodeEndpoint { NodeEndpoint(name: name, host: "qemu:///system", pool: "web", image: "demo@v2") }

  static func drainer(_ api: KubeStandin, kubectl: String, timeout: Int = 60) -> any Draining {
    Drainers.make(
      DrainSpec(backend: .kubernetes(kubeconfig: api.kubeconfig, gracePeriod: .seconds(1), kubectl: kubectl), timeout: .seconds(timeout)),
      hostPaths: HostPathPolicy(project: nil, allowed: [api.dir]))
  }

  @Test(arguments: clients) func cordonDrainAndUncordonChangeTheServersNode(kubectl: String) throws {
    let api = try KubeStandin()
    defer { api.stop() }
    try api.set(nodes: ["web-1", "web-2"], pods: ["default/app-1": ("web-1", "a"), "default/app-2": ("web-1", "b"), "default/other": ("web-2", "a")])
    let drainer = Self.drainer(api, kubectl: kubectl)
    try drainer.cordon(Self.node("web-1"))
    #expect(try api.unschedulable("web-1") == true, "cordoned on the server")
    #expect(try api.unschedulable("web-2") == false)
    let result = try drainer.drainResult(Self.node("web-1"), timeout: 30)
    #expect(result.drained && result.cause == nil)
    #expect(try api.pods() == ["default/other"], "web-1's pods were evicted, web-2's stay")
    #expect(try api.requests().contains { $0.method == "POST" && $0.path == "/api/v1/namespaces/default/pods/app-1/eviction" }, "through the Eviction API")
    try drainer.uncordon(Self.node("web-1"))
    #expect(try api.unschedulable("web-1") == false, "uncordoned on the server")
  }

  @Test(arguments: clients) func aDisruptionBudgetThatNeverAllowsIsATimeoutNamingThePod(kubectl: String) throws {
    let api = try KubeStandin()
    defer { api.stop() }
    try api.set(nodes: ["web-1"], pods: ["default/app-1": ("web-1", "a"), "shop/cart-0": ("web-1", "cart")], pdbs: ["cart-pdb": ("shop", "cart", nil)])
    let drainer = Self.drainer(api, kubectl: kubectl)
    try drainer.cordon(Self.node("web-1"))
    let result = try drainer.drainResult(Self.node("web-1"), timeout: 6)
    #expect(!result.drained, "kubectl's 'global timeout reached' is a timeout, for on_timeout to decide")
    #expect(result.cause?.contains("PodDisruptionBudget") == true && result.cause?.contains("shop/cart-0") == true, "\(String(describing: result.cause))")
    #expect(try api.pods() == ["shop/cart-0"], "the other pod was evicted, the protected one stays")
  }

  @Test(arguments: clients) func aDisruptionBudgetThatAllowsAfterAWhileLetsTheDrainFinish(kubectl: String) throws {
    let api = try KubeStandin()
    defer { api.stop() }
    try api.set(nodes: ["web-1"], pods: ["default/app-1": ("web-1", "a")], pdbs: ["a-pdb": ("default", "a", Date().timeIntervalSince1970 + 3)])
    let result = try Self.drainer(api, kubectl: kubectl).drainResult(Self.node("web-1"), timeout: 40)
    #expect(result.drained, "kubectl retried the eviction until the budget allowed it: \(String(describing: result.cause))")
    #expect(try api.pods().isEmpty)
    let evictions = try api.requests().filter { $0.method == "POST" && $0.path.hasSuffix("/eviction") }.count
    #expect(evictions >= 2, "refused (429) at least once, then allowed: \(evictions)")
  }
}

/// The API server stand-in, started for one test on a free loopback port, with a kubeconfig for it.
final class KubeStandin {
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/kube-apiserver-standin/server.py").path
  let dir: String
  let kubeconfig: String
  let port: Int
  let pid: pid_t

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-kube-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let portFile = dir + "/port"
    switch ChildProcess.spawn(["/usr/bin/python3", Self.script, portFile], ChildProcess.Options(output: dir + "/server.log", searchPath: false)) {
    case .success(let started): pid = started
    case .failure(let error): throw error
    }
    var found: Int?
    for _ in 0..<100 where found == nil {
      found = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
      if found == nil { Thread.sleep(forTimeInterval: 0.05) }
    }
    guard let found else { throw Diagnostic.error("test.kube", "the API server stand-in did not start") }
    port = found
    kubeconfig = dir + "/kubeconfig"
    try """
      apiVersion: v1
      kind: Config
      clusters: [{name: standin, cluster: {server: "http://127.0.0.1:\(port)"}}]
      users: [{name: drover, user: {}}]
      contexts: [{name: standin, context: {cluster: standin, user: drover}}]
      current-context: standin
      """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
  }

  func stop() {
    kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    try? FileManager.default.removeItem(atPath: dir)
  }

  func call(_ method: String, _ path: String, _ body: Any? = nil) throws -> Any {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    if let body { request.httpBody = try JSONSerialization.data(withJSONObject: body) }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var answer: Data?
    URLSession.shared.dataTask(with: request) { data, _, _ in
      answer = data
      done.signal()
    }.resume()
    guard done.wait(timeout: .now() + 10) == .success, let answer else { throw Diagnostic.error("test.kube", "the stand-in did not answer \(path)") }
    return try JSONSerialization.jsonObject(with: answer)
  }

  /// The world: nodes, pods (namespace/name → node, app label), PDBs (name → namespace, app, blocks until).
  func set(nodes: [String], pods: [String: (String, String)], pdbs: [String: (String, String, Double?)] = [:]) throws {
    var pdbJSON: [String: Any] = [:]
    for (name, (namespace, app, until)) in pdbs {
      var pdb: [String: Any] = ["namespace": namespace, "selector": ["app": app]]
      if let until { pdb["blocks_until"] = until }
      pdbJSON[name] = pdb
    }
    _ = try call(
      "PUT", "/__standin/state",
      [
        "nodes": Dictionary(uniqueKeysWithValues: nodes.map { ($0, [String: Any]()) }),
        "pods": pods.mapValues { ["node": $0.0, "labels": ["app": $0.1], "grace": 0.5] as [String: Any] }, "pdbs": pdbJSON,
      ])
  }

  func state() throws -> [String: Any] { try call("GET", "/__standin/state") as? [String: Any] ?? [:] }
  func unschedulable(_ node: String) throws -> Bool {
    ((try state()["nodes"] as? [String: [String: Any]])?[node]?["unschedulable"] as? Bool) ?? false
  }
  func pods() throws -> [String] { ((try state()["pods"] as? [String: Any]) ?? [:]).keys.sorted() }
  func requests() throws -> [(method: String, path: String)] {
    ((try call("GET", "/__standin/requests") as? [[String: Any]]) ?? []).map { ($0["method"] as? String ?? "", $0["path"] as? String ?? "") }
  }
}
