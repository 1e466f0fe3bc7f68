import Foundation

/// The peer tools `scripts/bench-setup` installs (benchmark-only, never Drover dependencies),
/// and the small files each needs to point at the benchmark's inventory.
struct Peers {
  /// The virtualenv holding libvirt-python, Ansible (with community.libvirt) and kcli.
  let venv: String
  let repo: String
  let work: String

  init(repo: String, work: String) {
    venv = ProcessInfo.processInfo.environment["DROVER_BENCH_VENV"] ?? "/var/lib/drover/bench-venv"
    self.repo = repo
    self.work = work
  }

  private func tool(_ path: String) -> String? { FileManager.default.isExecutableFile(atPath: path) ? path : nil }
  var python: String? { tool(venv + "/bin/python") }
  var ansiblePlaybook: String? { tool(venv + "/bin/ansible-playbook") }
  var kcli: String? { tool(venv + "/bin/kcli") }
  var packer: String? { tool("/usr/bin/packer") }
  let virsh = "/usr/bin/virsh"

  static let missingHint = "not installed: run scripts/bench-setup"

  /// Ansible's local inventory, with the interpreter pinned to the venv (its libvirt module
  /// needs libvirt-python and lxml from there).
  func ansibleInventory() throws -> String {
    let path = work + "/ansible-inventory.ini"
    try "localhost ansible_connection=local ansible_python_interpreter=\(venv)/bin/python\n".write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func ansible(_ playbook: String, _ vars: [String: String]) throws -> () throws -> Void {
    guard let ansiblePlaybook else { throw BenchError(Self.missingHint) }
    let inventory = try ansibleInventory()
    var argv = ["-i", inventory, repo + "/benchmarks/peers/" + playbook]
    for (k, v) in vars.sorted(by: { $0.key < $1.key }) { argv += ["-e", "\(k)=\(v)"] }
    let env = ["ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False"]
    return {
      let status = try runProcess(ansiblePlaybook, argv, environment: env)
      guard status == 0 else { throw BenchError("ansible-playbook \(playbook) exited with \(status)") }
    }
  }

  /// `kcli list vm` with a config whose only client is `uri` (HOME points at it).
  func kcliList(uri: String) throws -> () throws -> Void {
    guard let kcli else { throw BenchError(Self.missingHint) }
    let home = work + "/kcli-home"
    try FileManager.default.createDirectory(atPath: home + "/.kcli", withIntermediateDirectories: true)
    try "default:\n  client: bench\nbench:\n  type: kvm\n  url: \(uri)\n".write(toFile: home + "/.kcli/config.yml", atomically: true, encoding: .utf8)
    return {
      let status = try runProcess(kcli, ["list", "vm"], environment: ["HOME": home])
      guard status == 0 else { throw BenchError("kcli list vm exited with \(status)") }
    }
  }

  /// The libvirt-python floor: list + one metadata read per domain, serially.
  func pythonFloor(uri: String, namespace: String) throws -> () throws -> Void {
    guard let python else { throw BenchError(Self.missingHint) }
    let script = repo + "/benchmarks/peers/libvirt_floor.py"
    return {
      let status = try runProcess(python, [script, uri, namespace])
      guard status == 0 else { throw BenchError("libvirt_floor.py exited with \(status)") }
    }
  }
}
