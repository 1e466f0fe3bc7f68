import DroverBasics
import DroverModel
import DroverSpec
import Foundation
import Testing

/// #17: hosts are defined once in drover.yaml (name, uri, image_dir); their trust material comes
/// only from the machine's configuration, keyed by name.
@Suite struct HostEntryTests {
  func project(_ yaml: String) -> (ProjectSettings?, [Diagnostic]) {
    ProjectFile.decode(SpecSource(path: "drover.yaml", kind: .project, bytes: Array(yaml.utf8)))
  }

  @Test func hostEntriesAreDecodedAndChecked() {
    let (ok, problems) = project("project: p\nhosts:\n  - {name: rack-a, uri: \"qemu+libssh://drover@rack-a/system\", image_dir: /var/lib/drover/images}\n")
    #expect(problems.isEmpty, "\(problems)")
    #expect(ok?.hosts == [HostEntry(name: "rack-a", uri: "qemu+libssh://drover@rack-a/system", imageDir: "/var/lib/drover/images")])
    let (_, bad) = project("""
      project: p
      hosts:
        - {name: a, uri: "qemu:///session"}
        - {name: e, uri: "qemu+libssh://h/system?keyfile=/tmp/k"}
        - {name: "b c", uri: "qemu:///system"}
        - {name: d, uri: "qemu:///system", image_dir: relative}
        - {name: a, uri: "qemu+ssh://other/system"}

      """)
    #expect(bad.contains { $0.code == "spec.uri.unsafe" }, "no trust material in the project: \(bad)")
    #expect(bad.contains { $0.code == "spec.name" } && bad.contains { $0.code == "spec.path" } && bad.contains { $0.code == "spec.duplicate" }, "\(bad)")
  }

  @Test func poolsNameProjectEntriesAndTheConnectionGetsTheMachinesTrust() {
    let entries = [HostEntry(name: "h2", uri: "qemu+libssh://u@127.0.0.1:2222/session", imageDir: "/var/lib/drover/x")]
    let machine = MachineSettings(hosts: ["h2": MachineHost(parameters: ["keyfile": "/etc/drover/id key", "known_hosts": "/etc/drover/kh"])])
    let pool = SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array("name: web\nhosts: [h2]\nreplicas: 1\nimage: demo@v1\n".utf8))
    let (set, _) = SpecLoader.load([pool], machine: machine, hosts: entries)
    #expect(set.pools.first?.spec.hosts == ["qemu+libssh://u@127.0.0.1:2222/session"], "records and plans speak the plain URI")
    let directory = HostDirectory(entries: entries, machine: machine)
    #expect(
      directory.connectURI(for: entries[0].uri)
        == "qemu+libssh://u@127.0.0.1:2222/session?keyfile=/etc/drover/id%20key&known_hosts=/etc/drover/kh&sshauth=privkey")
    #expect(directory.connectURI(for: "qemu:///system") == "qemu:///system")
  }

  /// Plain TCP and `no_verify` verify nobody: only the machine may allow them, per host.
  @Test func unverifiedTransportsNeedTheMachinesInsecureFlag() {
    let entries = [HostEntry(name: "lab", uri: "qemu+tcp://lab/system")]
    #expect(HostDirectory(entries: entries, machine: MachineSettings()).insecureProblem("qemu+tcp://lab/system") != nil)
    let allowed = HostDirectory(entries: entries, machine: MachineSettings(hosts: ["lab": MachineHost(insecure: true)]))
    #expect(allowed.insecureProblem("qemu+tcp://lab/system") == nil)
    #expect(allowed.insecureProblem("qemu+tls://other/system") == nil)
    #expect(HostDirectory.isUnverified("qemu+tls://h/system?no_verify=1"))
  }
}
