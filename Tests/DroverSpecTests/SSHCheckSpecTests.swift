import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #18: `{type: ssh, command, output}` decodes to plain values; it needs the pool on a network.
@Suite struct SSHCheckSpecTests {
  func load(_ yaml: String) -> (SpecSet, [Diagnostic]) {
    SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
  }

  static let head = "name: web\nhosts: [qemu:///system]\nreplicas: 2\nimage: debian@v1\n"

  @Test func anSSHCheckDecodesAndSeedsThePool() throws {
    let (set, diagnostics) = load(Self.head + "network: default\nhealth: [{type: ssh, command: \"systemctl is-active ssh\", output: \"^active$\", timeout: 90s}]\n")
    #expect(!diagnostics.contains { $0.severity == .error && $0.code != "spec.image.unknown" }, "\(diagnostics)")
    let pool = try #require(set.pools.first).spec
    #expect(pool.health.first?.kind == .ssh(command: "systemctl is-active ssh", outputPattern: "^active$"))
    #expect(pool.health.first?.timeout == .seconds(90))
    #expect(pool.seeded, "the seed gives Drover's user its key")
  }

  @Test func anSSHCheckWithoutANetworkIsALocatedError() {
    let (_, diagnostics) = load(Self.head + "health:\n  - {type: ssh, command: \"true\"}\n")
    let error = diagnostics.first { $0.code == "spec.health.ssh" }
    #expect(error?.location?.start.line == 6 && error?.message.contains("needs the pool's nodes on a network") == true, "\(diagnostics)")
  }

  @Test(arguments: [
    ("static_addresses: {first: 192.168.122.240/24}", nil),
    ("static_addresses: {first: 192.168.122.252/24}", "2 nodes need 4 addresses from 192.168.122.252"),
    ("static_addresses: {first: 192.168.122.0/24}", "is the network's own address"),
    ("static_addresses: {first: 192.168.122.10}", "first must be an IPv4 address with a prefix length"),
    ("static_addresses: {first: 192.168.122.10/24, gateway: 192.168.122.11}", "is one of the nodes' addresses"),
    ("static_addresses: {first: 192.168.122.10/24, dns: [8.8.8]}", "dns must be an IPv4 address"),
    ("static_addresses: {gateway: 192.168.122.1}", "missing required key 'first'"),
    ("static_addresses: {first: 127.0.0.10/8}", "is a loopback address"),
    ("static_addresses: {first: 10.0.0.10/24, gateway: 169.254.169.254}", "is link-local"),
    ("static_addresses: {first: 192.168.122.100/24, gateway: 10.9.0.1}", "is outside the nodes' network 192.168.122.0/24"),
  ] as [(String, String?)])
  func staticAddresses(_ line: String, _ message: String?) throws {
    let (set, diagnostics) = load(Self.head + "network: default\n" + line + "\n")
    let errors = diagnostics.filter { $0.severity == .error && $0.code != "spec.image.unknown" }
    if let message {
      #expect(errors.contains { $0.message.contains(message) && $0.location?.start.line == 6 }, "\(errors.map(\.message))")
    } else {
      #expect(errors.isEmpty, "\(errors.map(\.message))")
      #expect(try #require(set.pools.first).spec.staticAddresses?.address(index: 2, generation: 1) == "192.168.122.243")
    }
  }

  @Test func staticAddressesNeedANetwork() {
    let (_, diagnostics) = load(Self.head + "static_addresses: {first: 10.0.0.10/24}\n")
    #expect(diagnostics.contains { $0.code == "spec.addresses" && $0.message.contains("needs the pool's nodes on a network") })
  }

  @Test(arguments: ["ssh_deletekeys: false", "ssh_keys: {ed25519_private: x}", "emit_keys_to_console: false", "ssh: {emit_keys_to_console: false}", "<<: {ssh_deletekeys: false}"])
  func userDataMayNotDecideHostKeys(_ line: String) {
    let (_, diagnostics) = load(Self.head + "cloud_init:\n  user_data: |\n    #cloud-config\n    \(line)\n")
    let error = diagnostics.first { $0.code == "spec.cloud-init" }
    #expect(error?.message.contains("the nodes' SSH host keys") == true && error?.location?.start.line == 6, "\(diagnostics.map(\.message))")
  }
}
