import DroverBasics

/// The hosts a command could not read, as its failure: one `libvirt.unreachable` per host.
enum Unreachable {
  static func diagnostics(_ unreachable: [String: String], saying: String) -> [Diagnostic] {
    unreachable.sorted { $0.key < $1.key }.map { .error("libvirt.unreachable", "\(saying): \($0.value)", subject: "host \($0.key)") }
  }
}
