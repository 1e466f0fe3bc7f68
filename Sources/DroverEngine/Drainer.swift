import DroverBasics
import DroverModel
import Foundation

/// Takes a node out of service and back (cordon → drain → … → uncordon).
public protocol Draining: Sendable {
  func cordon(_ node: NodeEndpoint) throws
  /// Waits until the node's work has moved away, within `timeout` seconds; returns false on timeout.
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool
  func uncordon(_ node: NodeEndpoint) throws
}

/// Builds the drain back-end a pool's spec names.
public enum Drainers {
  /// - Parameters:
  ///   - specFolder: the folder of the pool's file, which a relative kubeconfig is in.
  ///   - hostPaths: the machine's roots, where a kubeconfig must lie (never the project's own
  ///     files: a kubeconfig can name a credential program that kubectl runs); checked on its
  ///     real path here, right before use.
  public static func make(_ spec: DrainSpec, specFolder: String = "", hostPaths: HostPathPolicy = .projectOnly) -> any Draining {
    switch spec.backend {
    case .none: return NoDrain()
    case .command(let cordon, let drain, let uncordon): return CommandDrain(cordonArgv: cordon, drainArgv: drain, uncordonArgv: uncordon, timeout: spec.timeout.seconds)
    case .slurm(let nodeName): return SlurmDrain(nodeName: nodeName, timeout: spec.timeout.seconds)
    case .kubernetes(let kubeconfig, let grace):
      if let kubeconfig, let why = hostPaths.machineOnly.resolvedProblem(kubeconfig, in: specFolder, realPath: SafeFiles.realPath) {
        return RefusedDrain(
          problem: .error(
            "rollout.hook", "kubeconfig \(Terminal.escaped(kubeconfig)) \(why); no node was cordoned", subject: "kubeconfig",
            hint: "keep the kubeconfig outside the project, under a root the machine's configuration allows (it can name a program kubectl runs)"))
      }
      let located = kubeconfig.map { SafeFiles.realPath(HostPathPolicy.located($0, in: specFolder)) ?? $0 }
      return KubernetesDrain(kubeconfig: located, gracePeriod: grace.seconds, timeout: spec.timeout.seconds)
    }
  }

  static func check(_ result: HookRunner.Result, _ what: String, node: NodeEndpoint) throws {
    guard result.status == 0 else {
      throw Diagnostic.error(
        "rollout.hook", "\(what) of \(node.name) failed (exit \(result.status)\(result.timedOut ? ", killed at its timeout" : "")): \(result.output.suffix(300).trimmingCharacters(in: .whitespacesAndNewlines))",
        subject: "node \(node.name) on \(node.host)")
    }
  }
}

struct NoDrain: Draining {
  func cordon(_ node: NodeEndpoint) throws {}
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool { true }
  func uncordon(_ node: NodeEndpoint) throws {}
}

/// User hooks, run with DROVER_NODE / DROVER_HOST / DROVER_NODE_IP in the environment.
struct CommandDrain: Draining {
  var cordonArgv: [String]?
  var drainArgv: [String]?
  var uncordonArgv: [String]?
  var timeout: Double

  func cordon(_ node: NodeEndpoint) throws {
    if let argv = cordonArgv { try Drainers.check(HookRunner.run(argv, environment: node.hookEnvironment(), timeout: timeout), "cordon hook", node: node) }
  }

  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool {
    guard let argv = drainArgv else { return true }
    let result = HookRunner.run(argv, environment: node.hookEnvironment(), timeout: timeout)
    if result.timedOut { return false }
    try Drainers.check(result, "drain hook", node: node)
    return true
  }

  func uncordon(_ node: NodeEndpoint) throws {
    if let argv = uncordonArgv { try Drainers.check(HookRunner.run(argv, environment: node.hookEnvironment(), timeout: timeout), "uncordon hook", node: node) }
  }
}

/// Slurm: `scontrol update NodeName=… State=DRAIN`, wait for the node's jobs to finish, resume.
struct SlurmDrain: Draining {
  var nodeName: String?
  var timeout: Double

  func name(_ node: NodeEndpoint) -> String { nodeName ?? node.name }

  func cordon(_ node: NodeEndpoint) throws {
    try Drainers.check(
      HookRunner.run(["scontrol", "update", "NodeName=\(name(node))", "State=DRAIN", "Reason=drover rollout of \(node.pool)"], timeout: 30),
      "scontrol drain", node: node)
  }

  /// Polls `scontrol show node` until the state is DRAINED (no jobs left) or the timeout.
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      let result = HookRunner.run(["scontrol", "show", "node", name(node)], timeout: 30)
      try Drainers.check(result, "scontrol show node", node: node)
      if let state = result.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).first(where: { $0.hasPrefix("State=") }) {
        // DRAINED, or IDLE+DRAIN: no job left on the node.
        if state.contains("DRAINED") || (state.contains("IDLE") && state.contains("DRAIN")) { return true }
      }
      Thread.sleep(forTimeInterval: 0.5)
    }
    return false
  }

  func uncordon(_ node: NodeEndpoint) throws {
    try Drainers.check(HookRunner.run(["scontrol", "update", "NodeName=\(name(node))", "State=RESUME"], timeout: 30), "scontrol resume", node: node)
  }
}

/// A drain that may not run (its kubeconfig is outside what may be read): fails at cordon, the
/// first step, before any node leaves service.
struct RefusedDrain: Draining {
  var problem: Diagnostic
  func cordon(_ node: NodeEndpoint) throws { throw problem }
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool { throw problem }
  func uncordon(_ node: NodeEndpoint) throws { throw problem }
}

/// Kubernetes: `kubectl cordon` / `kubectl drain` (the Eviction API, which honours
/// PodDisruptionBudgets) / `kubectl uncordon`.
struct KubernetesDrain: Draining {
  var kubeconfig: String?
  var gracePeriod: Double
  var timeout: Double

  func kubectl(_ args: [String]) -> [String] { ["kubectl"] + (kubeconfig.map { ["--kubeconfig", $0] } ?? []) + args }

  func cordon(_ node: NodeEndpoint) throws {
    try Drainers.check(HookRunner.run(kubectl(["cordon", node.name]), timeout: 60), "kubectl cordon", node: node)
  }

  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool {
    let args = [
      "drain", node.name, "--ignore-daemonsets", "--delete-emptydir-data", "--grace-period=\(Int(gracePeriod))",
      "--timeout=\(Int(timeout))s",
    ]
    let result = HookRunner.run(kubectl(args), timeout: timeout + 30)
    if result.timedOut || result.output.contains("timed out") { return false }
    try Drainers.check(result, "kubectl drain", node: node)
    return true
  }

  func uncordon(_ node: NodeEndpoint) throws {
    try Drainers.check(HookRunner.run(kubectl(["uncordon", node.name]), timeout: 60), "kubectl uncordon", node: node)
  }
}
