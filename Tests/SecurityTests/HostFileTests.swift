import DroverBasics
import DroverEngine
import DroverModel
import DroverSpec
import Foundation
import Testing

/// #16: host files a spec names (kernel, initrd, base file, kubeconfig) lie in the project or
/// under a root the *machine* allows; a URI carrying trust material is only a machine host entry.
@Suite struct HostFileTests {
  func load(_ path: String, _ yaml: String, kind: SpecKind, machine: MachineSettings = MachineSettings(), project: String? = "/proj")
    -> [Diagnostic]
  {
    // Without images/ every pool names an unknown image: not what these tests are about.
    SpecLoader.load([SpecSource(path: path, kind: kind, bytes: Array(yaml.utf8))], machine: machine, projectFolder: project).1
      .filter { $0.code != "spec.image.unknown" }
  }

  func recipe(_ extra: String) -> String { "name: evil\nversion: v1\nbase: {rootfs: busybox}\n\(extra)\n" }

  /// `initrd: /etc/shadow` loads the host's shadow file into the build VM, where the recipe's
  /// commands can copy it into the image.
  @Test(arguments: [
    "kernel: /etc/shadow", "kernel: /vmlinuz\ninitrd: /etc/shadow", "kernel: ../../../etc/shadow", "kernel: ~root/vmlinuz",
    "kernel: /proj/../etc/shadow", "kernel: /bootx/vmlinuz",
  ])
  func aRecipeNamesNoHostFileOutsideTheRoots(_ line: String) {
    let machine = MachineSettings(allowedRoots: ["/boot"])
    let diagnostics = load("/proj/images/evil.yaml", recipe(line), kind: .recipe, machine: machine)
    #expect(diagnostics.contains { $0.code == "spec.path.host" }, "\(line): \(diagnostics)")
  }

  @Test func aBaseFileOutsideTheRootsIsRefused() {
    let yaml = "name: evil\nversion: v1\nbase: {file: /var/lib/secret.qcow2, sha256: \(String(repeating: "a", count: 64))}\n"
    let diagnostics = load("/proj/images/evil.yaml", yaml, kind: .recipe)
    #expect(diagnostics.contains { $0.code == "spec.path.host" && $0.location?.start.line == 3 }, "\(diagnostics)")
  }

  @Test(arguments: ["kernel: files/vmlinuz", "kernel: /proj/kernels/vmlinuz", "kernel: /boot/vmlinuz-6.1", "kernel: /boot"])
  func filesInTheProjectOrAnAllowedRootPass(_ line: String) {
    let diagnostics = load("/proj/images/ok.yaml", recipe(line), kind: .recipe, machine: MachineSettings(allowedRoots: ["/boot"]))
    #expect(!diagnostics.hasErrors, "\(line): \(diagnostics)")
  }

  /// A kubeconfig can name a credential program (`exec:`) that kubectl runs.
  @Test func aKubeconfigOutsideTheRootsIsRefused() {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 1\nimage: demo@v1\ndrain: {type: kubernetes, kubeconfig: /home/someone/.kube/config}\n"
    #expect(load("/proj/pools/web.yaml", yaml, kind: .pool).contains { $0.code == "spec.path.host" })
    let allowed = load("/proj/pools/web.yaml", yaml, kind: .pool, machine: MachineSettings(allowedRoots: ["/home/someone/.kube"]))
    #expect(!allowed.hasErrors, "\(allowed)")
    // The project's own files came with the pull request: never a kubeconfig.
    for path in ["kube.conf", "/proj/kube.conf"] {
      let inProject = load("/proj/pools/web.yaml", yaml.replacingOccurrences(of: "/home/someone/.kube/config", with: path), kind: .pool)
      #expect(inProject.contains { $0.code == "spec.path.host" }, "\(path): \(inProject)")
    }
  }

  /// The lexical check passes `kernels/vmlinuz`; a link there to `/etc/shadow` must not.
  @Test func aLinkInTheProjectToAHostFileIsRefusedAtUse() throws {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drover-hostfile-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))").path
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let project = scratch + "/proj", images = project + "/images", outside = scratch + "/outside"
    try FileManager.default.createDirectory(atPath: images + "/files", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
    try "secret".write(toFile: outside + "/shadow", atomically: true, encoding: .utf8)
    try "kernel".write(toFile: images + "/files/vmlinuz", atomically: true, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: images + "/files/evil", withDestinationPath: outside + "/shadow")
    let policy = HostPathPolicy(project: project, allowed: [])
    #expect(policy.problem("files/evil") == nil, "lexically fine")
    #expect(policy.resolvedProblem("files/evil", in: images, realPath: SafeFiles.realPath)?.contains("resolves to") == true)
    #expect(policy.resolvedProblem("files/vmlinuz", in: images, realPath: SafeFiles.realPath) == nil)
    // An allowed root that is itself a link still holds its files.
    try FileManager.default.createSymbolicLink(atPath: scratch + "/kernels", withDestinationPath: outside)
    let viaLink = HostPathPolicy(project: project, allowed: [scratch + "/kernels"])
    #expect(viaLink.resolvedProblem(scratch + "/kernels/shadow", in: images, realPath: SafeFiles.realPath) == nil)

    // The drain refuses at cordon, before any node leaves service.
    try FileManager.default.createSymbolicLink(atPath: project + "/pools", withDestinationPath: images + "/files")
    let drain = Drainers.make(
      DrainSpec(backend: .kubernetes(kubeconfig: "evil", gracePeriod: .seconds(1)), timeout: .seconds(5)), specFolder: project + "/pools",
      hostPaths: policy)
    #expect(throws: Diagnostic.self) { try drain.cordon(NodeEndpoint(name: "n", host: "test:///default", pool: "web", image: "demo@v1")) }
  }

  /// Trust parameters come only from the machine's host entries, which pool files name.
  @Test func aPoolNamesAMachineHostEntryForTrustMaterial() {
    let uri = "qemu+ssh://drover@lab/system?keyfile=/etc/drover/id&known_hosts=/etc/drover/known_hosts"
    let machine = MachineSettings(hosts: ["lab": MachineHost(uri: uri)])
    let (set, ok) = SpecLoader.load(
      [SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array("name: web\nhosts: [lab]\nreplicas: 1\nimage: demo@v1\n".utf8))], machine: machine)
    #expect(!ok.contains { $0.code != "spec.image.unknown" }, "\(ok)")
    #expect(set.pools.first?.spec.hosts == [uri])
    let unknown = load("pools/web.yaml", "name: web\nhosts: [lba]\nreplicas: 1\nimage: demo@v1\n", kind: .pool, machine: machine)
    #expect(unknown.contains { $0.code == "spec.host.unknown" && ($0.hint ?? "").contains("lab") }, "\(unknown)")
    let inline = load("pools/web.yaml", "name: web\nhosts: [\"\(uri)\"]\nreplicas: 1\nimage: demo@v1\n", kind: .pool, machine: machine)
    #expect(inline.contains { $0.code == "spec.uri.unsafe" }, "the same URI written in a pool file is still refused")
  }

  @Test func theMachineConfigurationIsChecked() {
    let yaml = "allow_paths: [/, boot, /a/../etc, /boot]\nkernel: vmlinuz\nhosts: {\"a b\": qemu:///system, lab: nonsense}\nextra: 1\n"
    let (settings, problems) = MachineConfigFile.decode(SpecSource(path: "/etc/drover/config.yaml", kind: .project, bytes: Array(yaml.utf8)))
    #expect(settings.allowedRoots == ["/boot"])
    #expect(problems.filter { $0.code == "machine.path" }.count == 4, "\(problems)")
    #expect(problems.filter { $0.code == "machine.host" }.count == 2, "\(problems)")
    #expect(problems.contains { $0.code.hasPrefix("spec.unknown") }, "\(problems.map(\.code))")
  }

  /// #40: state database entries of the machine configuration — the only place trust material
  /// and credentials for the state database come from — are checked like host entries.
  @Test func stateServerEntriesAreChecked() {
    let yaml = """
      state:
        "db.example:5432": {ca: /etc/drover/db-ca.pem, password_file: /etc/drover/db-password}
        "127.0.0.1:54329": {insecure: true}
        "no-port": {insecure: true}
        "both:1": {ca: /etc/ca.pem, insecure: true}
        "rel:2": {ca: ca.pem}
        "odd:3": {ca: /etc/ca.pem, sslmode: disable}

      """
    let (settings, problems) = MachineConfigFile.decode(SpecSource(path: "/etc/drover/config.yaml", kind: .project, bytes: Array(yaml.utf8)))
    #expect(settings.stateServers["db.example:5432"] == MachineStateServer(ca: "/etc/drover/db-ca.pem", passwordFile: "/etc/drover/db-password"))
    #expect(settings.stateServers["127.0.0.1:54329"]?.insecure == true)
    #expect(settings.stateServers["no-port"] == nil && problems.contains { $0.code == "machine.state" && $0.message.contains("no-port") }, "\(problems)")
    #expect(problems.contains { $0.code == "machine.state" && $0.message.contains("CA and insecure") }, "\(problems)")
    #expect(problems.contains { $0.code == "machine.path" && $0.message.contains("ca.pem") }, "\(problems)")
    #expect(problems.contains { $0.code.hasPrefix("spec.unknown") }, "an unknown key is an error: \(problems.map(\.code))")
  }
}
