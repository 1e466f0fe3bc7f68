import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #42: one set of node variables for every template, and `drain.node_name` a template over them,
/// validated where it is written.
@Suite struct DrainNodeNameTests {
  func load(_ drain: String) -> (DrainSpec?, [Diagnostic]) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 2\nimage: demo@v1\ndrain: \(drain)\n"
    let (set, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    return (set.pools.first?.spec.drain, diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" })
  }

  static let surge = NodeVariables(node: "web-1", domain: "web-1-g2", hostname: "web-1-g2", address: "10.0.0.12", pool: "web")

  @Test(arguments: [
    ("{{hostname}}", "web-1-g2"),
    ("{{node}}", "web-1"),
    ("{{domain}}", "web-1-g2"),
    ("{{pool}}-{{ node }}.cluster.local", "web-web-1.cluster.local"),
    ("ip-{{address}}", "ip-10.0.0.12"),
    ("n1", "n1"),
  ] as [(String, String)])
  func templatesRenderTheNodesValues(_ template: String, _ rendered: String) {
    #expect(NodeTemplate.problem(template) == nil)
    #expect(NodeTemplate.render(template, Self.surge) == rendered)
  }

  @Test func aVariableWithoutAValueIsNoName() {
    var v = Self.surge
    v.address = nil
    #expect(NodeTemplate.render("ip-{{address}}", v) == nil, "never a name with a hole in it")
  }

  @Test(arguments: [
    ("{{index}}", "{{index}} is not a node variable"),
    ("{{node", "'{{' is never closed"),
    ("node}}", "'}}' closes nothing"),
    ("", "it is empty"),
  ] as [(String, String)])
  func badTemplatesAreNamed(_ template: String, _ why: String) {
    #expect(NodeTemplate.problem(template)?.contains(why) == true, "\(String(describing: NodeTemplate.problem(template)))")
  }

  @Test func nodeNameIsATemplateForSlurmAndKubernetes() {
    let (slurm, e1) = load("{type: slurm, node_name: \"{{pool}}-{{node}}\"}")
    #expect(e1.isEmpty, "\(e1)")
    #expect(slurm?.backend == .slurm(nodeName: "{{pool}}-{{node}}"))
    let (kube, e2) = load("{type: kubernetes, node_name: \"{{domain}}\", kubectl: /usr/bin/kubectl}")
    #expect(e2.isEmpty, "\(e2)")
    #expect(kube?.backend == .kubernetes(kubeconfig: nil, gracePeriod: .seconds(30), kubectl: "/usr/bin/kubectl", nodeName: "{{domain}}"))
  }

  @Test func aBadNodeNameOrClientIsALocatedError() {
    let (_, errors) = load("{type: kubernetes, node_name: \"{{host}}\"}")
    #expect(errors.contains { $0.code == "spec.drain.node-name" && $0.message.contains("{{host}} is not a node variable") && $0.location?.start.line == 5 }, "\(errors)")
    let (_, bad) = load("{type: kubernetes, kubectl: \"kubectl --insecure\"}")
    #expect(bad.contains { $0.code == "spec.drain.kubectl" }, "\(bad)")
  }

  @Test func aSeededNodesHostnameIsItsDomainsName() {
    let o = NodeOwnership(
      pool: "web", node: "web-1-g2", index: 1, image: "demo@v1", digest: "", specHash: "", generation: 2, vcpu: 1, memoryMiB: 256, diskMiB: 1024,
      network: nil, labels: [:], protect: false)
    #expect(CloudInitSeed.hostname(of: o) == "web-1-g2", "the two halves of a surge pair never share a hostname")
    #expect(NodeVariables(ownership: o, address: nil).node == "web-1")
  }

  /// What the plan shows: the name drained (the old node's) and the name uncordoned (its
  /// replacement's), one pure rendering; a variable without a value yet says so.
  @Test func thePlanNamesTheSchedulerNodes() {
    var old = NodeOwnership(
      pool: "web", node: "web-1", index: 1, image: "demo@v1", digest: "", specHash: "", generation: 1, vcpu: 1, memoryMiB: 256, diskMiB: 1024,
      network: nil, labels: [:], protect: false)
    var new = old
    new.node = "web-1-g2"
    new.generation = 2
    let byHostname = DrainSpec.Backend.kubernetes(kubeconfig: nil, gracePeriod: .seconds(30)).schedulerNames(from: old, to: new)
    #expect(byHostname == SchedulerNames(node: "web-1", drains: "web-1", uncordons: "web-1-g2"))
    #expect(DrainSpec.Backend.slurm(nodeName: "{{pool}}-{{node}}").schedulerNames(from: old, to: new) == SchedulerNames(node: "web-1", drains: "web-web-1", uncordons: "web-web-1"))
    old.address = "10.0.0.5"
    let byAddress = DrainSpec.Backend.slurm(nodeName: "ip-{{address}}").schedulerNames(from: old, to: new)
    #expect(byAddress?.drains == "ip-10.0.0.5" && byAddress?.uncordons == "ip-{{address}} (filled in at drain time)")
    #expect(DrainSpec.Backend.command(cordon: nil, drain: ["true"], uncordon: nil).schedulerNames(from: old, to: new) == nil, "hooks name nodes themselves")
  }
}
