import DroverModel
import DroverPlan
import Testing

/// Which hosts a project keeps reading (`ProjectHosts`), as a table, and what the planner says of
/// a remembered host it could not read.
@Suite struct ProjectHostsTests {
  static let a = "qemu+ssh://a/system", b = "qemu+ssh://b/system", c = "qemu+ssh://c/system"

  static func host(_ uri: String, owned project: String? = nil, overlay: String? = nil) -> ObservedHost {
    let domains: [ObservedDomain] = project.map { p -> [ObservedDomain] in
      let spec = PoolSpec(name: "web", hosts: [uri], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
      let o = desiredOwnership(spec, index: 1, digest: "", generation: 1, project: p)
      return [ObservedDomain(name: o.node, uuid: "u", state: "running", isActive: true, ownership: o, metadataDigest: "", trust: .verified)]
    } ?? []
    return ObservedHost(uri: uri, domains: domains, overlays: overlay.map { [$0] } ?? [])
  }

  struct Row: Sendable, CustomTestStringConvertible {
    var name: String
    var declared: Set<String>
    var remembered: Set<String>
    var observed: ObservedWorld
    var expected: Set<String>
    var testDescription: String { name }
  }

  static let rows: [Row] = [
    Row(name: "declared hosts are remembered before they hold anything", declared: [a], remembered: [], observed: ObservedWorld(hosts: [a: host(a)]), expected: [a]),
    Row(name: "a former host with a node of the project stays", declared: [a], remembered: [a, b],
        observed: ObservedWorld(hosts: [a: host(a), b: host(b, owned: "default")]), expected: [a, b]),
    Row(name: "a former host with only an overlay of the project stays", declared: [], remembered: [b],
        observed: ObservedWorld(hosts: [b: host(b, overlay: "drover.default.web-1.g1.qcow2")]), expected: [b]),
    Row(name: "a former host read holding nothing of the project's is forgotten", declared: [a], remembered: [a, b],
        observed: ObservedWorld(hosts: [a: host(a), b: host(b, owned: "other", overlay: "drover.other.web-1.g1.qcow2")]), expected: [a]),
    Row(name: "a former host that could not be read is kept", declared: [a], remembered: [b],
        observed: ObservedWorld(hosts: [a: host(a)], unreachable: [b: "refused"]), expected: [a, b]),
    Row(name: "an undeclared host holding project nodes is remembered even if never listed", declared: [], remembered: [],
        observed: ObservedWorld(hosts: [c: host(c, owned: "default")]), expected: [c]),
  ]

  @Test(arguments: rows) func remembered(_ row: Row) {
    #expect(ProjectHosts.toRemember(declared: row.declared, remembered: row.remembered, observed: row.observed, project: "default") == row.expected)
  }

  @Test func aRememberedSpellingOfADeclaredHostIsAnAliasAndForgotten() {
    let same = Self.host(Self.a, owned: "default")
    var alias = same
    alias.uri = Self.b
    let world = ObservedWorld(hosts: [Self.a: same, Self.b: alias])
    #expect(ProjectHosts.aliases(declared: [Self.a], observed: world) == [Self.b])
    #expect(ProjectHosts.withoutAliases(world, declared: [Self.a]).hosts.keys.sorted() == [Self.a])
    #expect(ProjectHosts.toRemember(declared: [Self.a], remembered: [Self.b], observed: world, project: "default") == [Self.a])
    // Another daemon with a node of the same name but its own UUID is not an alias.
    let other = ObservedHost(uri: Self.b, domains: same.domains.map { var d = $0; d.uuid = "other"; return d })
    #expect(ProjectHosts.aliases(declared: [Self.a], observed: ObservedWorld(hosts: [Self.a: same, Self.b: other])).isEmpty)
    // An empty host is never an alias of anything.
    #expect(ProjectHosts.aliases(declared: [Self.a], observed: ObservedWorld(hosts: [Self.a: same, Self.b: Self.host(Self.b)])).isEmpty)
  }

  @Test func oneDomainSeenThroughTwoDeclaredURIsIsAnErrorNotADuplicateDelete() {
    let spec = PoolSpec(name: "web", hosts: [Self.a, Self.b], replicas: 1, image: ImageRef(parsing: "demo@v1")!)
    let o = desiredOwnership(spec, index: 1, digest: "", generation: 1, project: "default")
    let d = ObservedDomain(name: o.node, uuid: "u1", state: "running", isActive: true, ownership: o, metadataDigest: "", trust: .verified)
    let world = ObservedWorld(hosts: [Self.a: ObservedHost(uri: Self.a, domains: [d]), Self.b: ObservedHost(uri: Self.b, domains: [d])])
    let (plan, diagnostics) = makePlan(pools: [spec], observed: world)
    #expect(!plan.actions.contains { $0.kind == .delete }, "\(plan.actions)")
    #expect(diagnostics.contains { $0.code == "plan.same-host-twice" })
  }

  @Test func readsDeclaredAndRememberedOnce() {
    #expect(ProjectHosts.toRead(declared: [Self.b, Self.a], remembered: [Self.a, Self.c]) == [Self.a, Self.b, Self.c])
  }

  @Test func anUnreadFormerHostIsAPlanErrorNamingIt() {
    let spec = PoolSpec(name: "db", hosts: [Self.a], replicas: 0, image: ImageRef(parsing: "demo@v1")!)
    let world = ObservedWorld(hosts: [Self.a: Self.host(Self.a)], unreachable: [Self.b: "connection refused"])
    let (plan, diagnostics) = makePlan(pools: [spec], observed: world)
    #expect(plan.actions.isEmpty)
    #expect(diagnostics.count == 1)
    #expect(diagnostics.first?.message.contains("host \(Self.b), which no pool names any more") == true)
    #expect(diagnostics.first?.hint?.contains(".drover/hosts") == true)
  }

  /// Records from before keyed records count only in the migration: no keyed record visible and
  /// no key on this machine. With the key held, an old-style record is a copy or a forgery.
  @Test func legacyRecordsAreTrustedOnlyInTheMigration() {
    let spec = PoolSpec(name: "web", hosts: [Self.a], replicas: 2, image: ImageRef(parsing: "demo@v1")!)
    let legacy = (1...2).map { i -> ObservedDomain in
      let o = desiredOwnership(spec, index: i, digest: "", generation: 1, project: "default")
      return ObservedDomain(name: o.node, uuid: "u\(i)", state: "running", isActive: true, ownership: o, metadataDigest: "", trust: .legacy)
    }
    let world = ObservedWorld(hosts: [Self.a: ObservedHost(uri: Self.a, domains: legacy)])
    let migrating = TrustedRecords(world, project: "default")
    #expect(migrating.owned.count == 2 && migrating.refused.isEmpty && !migrating.keyed)
    let held = TrustedRecords(world, project: "default", keyHeld: true)
    #expect(held.owned.isEmpty && held.refused.count == 2)
    var twice = legacy
    twice[1].name = "web-1"
    twice[1].ownership?.node = "web-1"
    twice[1].ownership?.index = 1
    let rivals = TrustedRecords(ObservedWorld(hosts: [Self.a: ObservedHost(uri: Self.a, domains: twice)]), project: "default")
    #expect(rivals.owned.isEmpty && rivals.refused.allSatisfy { $0.why.contains("claim node web-1") })
    var keyedToo = legacy
    keyedToo[0].trust = .verified
    let mixed = TrustedRecords(ObservedWorld(hosts: [Self.a: ObservedHost(uri: Self.a, domains: keyedToo)]), project: "default")
    #expect(mixed.owned.map(\.domain.name) == ["web-1"] && mixed.refused.map(\.entry.domain.name) == ["web-2"])
  }
}
