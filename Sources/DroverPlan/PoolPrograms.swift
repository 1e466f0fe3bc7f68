import DroverBasics
import DroverModel

/// The programs a pool makes Drover run on this machine, as Drover's user (root): drain command
/// hooks and `command` health checks, plus the kubeconfig a Kubernetes drain trusts.
///
/// Why they are shown: a pull request that changes a hook changes what runs as root at the next
/// apply, so `plan` lists them for every pool it touches and marks a change on each node whose
/// record holds the previous set (`hooks`, a digest). A saved plan pins them through its spec
/// digest. Pure.
public enum PoolPrograms {
  public static func list(_ pool: PoolSpec) -> [String] {
    var lines: [String] = []
    func argv(_ a: [String]) -> String { "[" + a.map { "\"\(Terminal.escaped($0))\"" }.joined(separator: ", ") + "]" }
    switch pool.drain.backend {
    case .command(let cordon, let drain, let uncordon):
      if let cordon { lines.append("drain cordon: \(argv(cordon))") }
      if let drain { lines.append("drain: \(argv(drain))") }
      if let uncordon { lines.append("drain uncordon: \(argv(uncordon))") }
    case .kubernetes(let kubeconfig, _, let kubectl, _):
      // The default client reads as it always did (records made before drain.kubectl keep their digest).
      lines.append("drain: \(kubectl.map(Terminal.escaped) ?? "kubectl") (kubeconfig \(kubeconfig.map(Terminal.escaped) ?? "default"))")
    case .slurm: lines.append("drain: scontrol")
    case .none: break
    }
    for check in pool.health {
      if case .command(let a) = check.kind { lines.append("health check: \(argv(a))") }
    }
    return lines
  }

  /// What a record stores: 16 hex digits of the list ("" when the pool runs none).
  public static func digest(_ pool: PoolSpec) -> String {
    let lines = list(pool)
    return lines.isEmpty ? "" : String(ContentDigest.of(lines.joined(separator: "\n")).hex.prefix(16))
  }
}
