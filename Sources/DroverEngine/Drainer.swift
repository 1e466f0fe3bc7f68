import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// Takes a node out of service and back (cordon → drain → … → uncordon).
public protocol Draining: Sendable {
  func cordon(_ node: NodeEndpoint) throws
  /// Waits until the node's work has moved away, within `timeout` seconds; returns false on timeout.
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool
  /// The same wait, saying on a timeout what held it (the pods a disruption budget protects, the
  /// jobs still running or completing) — for the output, the journal and `apply --json` (#42).
  func drainResult(_ node: NodeEndpoint, timeout: Double) throws -> DrainResult
  func uncordon(_ node: NodeEndpoint) throws
  /// Cordons, and says what an operator had already set on the node (a state its replacement
  /// must get back, see `OperatorHold`); nil: nothing, or a back-end that cannot tell.
  func cordonNoting(_ node: NodeEndpoint) throws -> OperatorHold?
  /// Puts the node back into service — or, when `hold` says an operator had it out of service
  /// before the rollout, gives it that state and reason instead.
  func uncordon(_ node: NodeEndpoint, restoring hold: OperatorHold?) throws
}

/// How a drain ended: drained, or not within its time and why.
public struct DrainResult: Sendable, Hashable {
  public var drained: Bool
  /// What kept the node busy (nil: drained, or the back-end cannot say).
  public var cause: String?

  public init(drained: Bool, cause: String? = nil) {
    self.drained = drained
    self.cause = cause
  }
}

extension Draining {
  public func drainResult(_ node: NodeEndpoint, timeout: Double) throws -> DrainResult {
    DrainResult(drained: try drain(node, timeout: timeout))
  }

  public func cordonNoting(_ node: NodeEndpoint) throws -> OperatorHold? {
    try cordon(node)
    return nil
  }

  public func uncordon(_ node: NodeEndpoint, restoring hold: OperatorHold?) throws { try uncordon(node) }
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
    case .kubernetes(let kubeconfig, let grace, let kubectl, let nodeName):
      if let kubeconfig, let why = hostPaths.machineOnly.resolvedProblem(kubeconfig, in: specFolder, realPath: SafeFiles.realPath) {
        return RefusedDrain(
          problem: .error(
            "rollout.hook", "kubeconfig \(Terminal.escaped(kubeconfig)) \(why); no node was cordoned", subject: "kubeconfig",
            hint: "keep the kubeconfig outside the project, under a root the machine's configuration allows (it can name a program kubectl runs)"))
      }
      let located = kubeconfig.map { SafeFiles.realPath(HostPathPolicy.located($0, in: specFolder)) ?? $0 }
      return KubernetesDrain(
        kubectl: kubectl ?? "kubectl", kubeconfig: located, gracePeriod: grace.seconds, timeout: spec.timeout.seconds, nodeName: nodeName)
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

/// Slurm, by its states (#42): `scontrol update NodeName=… State=DRAIN Reason="drover rollout …"`;
/// drained once no job runs on the node and none is completing (`DRAINED`, or `IDLE`+`DRAIN`
/// without `COMPLETING`: an epilog may still run); then `State=RESUME` — only for a drain Drover
/// set. A node an operator had already drained, taken down or given a reason keeps that state
/// and reason: Drover neither overwrites nor resumes it (its own reasons start with `drover`).
struct SlurmDrain: Draining {
  var nodeName: String?
  var timeout: Double

  /// The Slurm node's name: `node_name` rendered for this node (default `{{hostname}}`).
  func name(_ node: NodeEndpoint) throws -> String { try node.schedulerName(nodeName) }

  /// A node as `scontrol show node` tells it: its state flags and its reason.
  struct NodeState: Equatable {
    var flags: Set<String>
    var reason: String?

    /// No job left and none completing.
    var drained: Bool {
      guard !flags.contains("COMPLETING") else { return false }
      return flags.contains("DRAINED") || (flags.contains("DRAIN") && flags.contains("IDLE")) || flags.contains("DOWN")
    }

    /// Drained, draining, down or failed, or with a reason someone gave: an operator's, not Drover's.
    var heldByOperator: Bool {
      let theirs = reason.map { !$0.hasPrefix(SlurmDrain.reasonPrefix) } ?? false
      return theirs || (reason == nil && !flags.isDisjoint(with: ["DRAIN", "DRAINED", "DRAINING", "DOWN", "FAIL", "FAILING"]))
    }

    /// What an operator set, for the replacement to get back: DOWN, FAIL or DRAIN (in that
    /// order: the strongest), with their reason; nil when nothing is theirs.
    var hold: OperatorHold? {
      guard heldByOperator else { return nil }
      let state: String? =
        flags.contains("DOWN") ? "DOWN"
        : !flags.isDisjoint(with: ["FAIL", "FAILING"]) ? "FAIL"
        : !flags.isDisjoint(with: ["DRAIN", "DRAINED", "DRAINING"]) ? "DRAIN" : nil
      return OperatorHold(state: state, reason: reason.flatMap { $0.hasPrefix(SlurmDrain.reasonPrefix) ? nil : $0 })
    }

    /// Parses `scontrol show node NAME` (its `State=A+B` word and its `Reason=…` line, without
    /// the trailing `[user@time]`).
    static func parse(_ output: String) -> NodeState? {
      var flags: Set<String>?
      var reason: String?
      for line in output.split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("Reason=") {
          var text = String(trimmed.dropFirst("Reason=".count))
          if text.hasSuffix("]"), let open = text.range(of: " [", options: .backwards) { text = String(text[..<open.lowerBound]) }
          if !text.isEmpty && text != "(null)" && text != "none" { reason = text }
        }
        for word in trimmed.split(separator: " ") where word.hasPrefix("State=") {
          flags = Set(word.dropFirst("State=".count).split(separator: "+").map { String($0).uppercased().trimmingCharacters(in: CharacterSet(charactersIn: "*~#!%$@^-")) })
        }
      }
      return flags.map { NodeState(flags: $0, reason: reason) }
    }
  }

  static let reasonPrefix = "drover"

  func show(_ node: NodeEndpoint) throws -> NodeState {
    let slurmName = try name(node)
    let result = HookRunner.run(["scontrol", "show", "node", slurmName], timeout: 30)
    try Drainers.check(result, "scontrol show node", node: node)
    guard let state = NodeState.parse(result.output) else {
      throw Diagnostic.error("rollout.hook", "scontrol show node \(slurmName) said no State: \(result.output.prefix(300))", subject: "node \(node.name)")
    }
    return state
  }

  func cordon(_ node: NodeEndpoint) throws { _ = try cordonNoting(node) }

  func cordonNoting(_ node: NodeEndpoint) throws -> OperatorHold? {
    let slurmName = try name(node)
    let before = try show(node)
    if let hold = before.hold {
      // Already out of service by someone's hand: that state and reason stay as they are.
      StepOutput.record("slurm node \(slurmName) is held by its operator (State=\(before.flags.sorted().joined(separator: "+"))\(before.reason.map { ", Reason=\($0)" } ?? "")): left as it is, never resumed by Drover")
      return hold
    }
    let reason = "\(Self.reasonPrefix) rollout \(node.rollout ?? "of pool \(node.pool)"): replacing \(node.name)"
    try Drainers.check(
      HookRunner.run(["scontrol", "update", "NodeName=\(slurmName)", "State=DRAIN", "Reason=\(reason)"], timeout: 30), "scontrol drain", node: node)
    return nil
  }

  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool { try drainResult(node, timeout: timeout).drained }

  /// Polls the node until it is drained (no job running, none completing), or the timeout: then
  /// the jobs still there are named.
  func drainResult(_ node: NodeEndpoint, timeout: Double) throws -> DrainResult {
    let slurmName = try name(node)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if try show(node).drained { return DrainResult(drained: true) }
      Thread.sleep(forTimeInterval: 0.5)
    }
    let jobs = HookRunner.run(["squeue", "-h", "-w", slurmName, "-o", "%i %T"], timeout: 30).output
      .split(separator: "\n").prefix(20).map { $0.split(separator: " ").joined(separator: " ") }.filter { !$0.isEmpty }
    let state = (try? show(node)).map { $0.flags.sorted().joined(separator: "+") } ?? "?"
    return DrainResult(
      drained: false,
      cause: jobs.isEmpty
        ? "slurm node \(slurmName) is still \(state)"
        : "slurm node \(slurmName) still has jobs: \(jobs.map { "job \($0.lowercased())" }.joined(separator: ", "))")
  }

  func uncordon(_ node: NodeEndpoint) throws { try uncordon(node, restoring: nil) }

  /// Resumes Drover's own drain; with an operator's `hold`, the node gets that state and reason
  /// instead (a replacement registers fresh, or under a new name): never resumed.
  func uncordon(_ node: NodeEndpoint, restoring hold: OperatorHold?) throws {
    let slurmName = try name(node)
    let now = try show(node)
    if let hold {
      let theirs = now.hold
      if theirs?.state == hold.state && theirs?.reason == hold.reason {
        StepOutput.record("slurm node \(slurmName) stays as its operator left it (\(hold.journalText))")
        return
      }
      guard let state = hold.state else {
        // Only a reason, which Slurm keeps with a state: said, not invented.
        StepOutput.record("slurm node \(slurmName): its operator's reason before the rollout was \(hold.reason ?? "-") (no state to give back)")
        if let reason = now.reason, reason.hasPrefix(Self.reasonPrefix) {
          try Drainers.check(HookRunner.run(["scontrol", "update", "NodeName=\(slurmName)", "State=RESUME"], timeout: 30), "scontrol resume", node: node)
        }
        return
      }
      let reason = hold.reason ?? "held by its operator before \(Self.reasonPrefix) rollout \(node.rollout ?? "")"
      try Drainers.check(
        HookRunner.run(["scontrol", "update", "NodeName=\(slurmName)", "State=\(state)", "Reason=\(reason)"], timeout: 30), "scontrol restore", node: node)
      StepOutput.record("slurm node \(slurmName) given back its operator's state: State=\(state) Reason=\(reason)")
      return
    }
    // Only Drover's own drain is undone: an operator's stays, with its reason.
    guard let reason = now.reason, reason.hasPrefix(Self.reasonPrefix) else {
      if now.heldByOperator { StepOutput.record("slurm node \(slurmName) stays as its operator left it (\(now.reason.map { "Reason=\($0)" } ?? "no reason"))") }
      return
    }
    try Drainers.check(HookRunner.run(["scontrol", "update", "NodeName=\(slurmName)", "State=RESUME"], timeout: 30), "scontrol resume", node: node)
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
/// PodDisruptionBudgets) / `kubectl uncordon`, through the real kubectl (`drain.kubectl`, else
/// `kubectl` on PATH). kubectl retries an eviction a PodDisruptionBudget refuses (HTTP 429) every
/// 5 s until `--timeout`, then ends with `global timeout reached` (1.20 to 1.32 alike): that is a
/// timeout — `on_timeout` decides — and the pods it could not evict are named.
struct KubernetesDrain: Draining {
  var kubectl: String = "kubectl"
  var kubeconfig: String?
  var gracePeriod: Double
  var timeout: Double
  /// The Kubernetes node's name, a template (nil: `{{hostname}}`, what its kubelet registers).
  var nodeName: String? = nil

  func kubectl(_ args: [String]) -> [String] { [kubectl] + (kubeconfig.map { ["--kubeconfig", $0] } ?? []) + args }

  func cordon(_ node: NodeEndpoint) throws {
    try Drainers.check(HookRunner.run(kubectl(["cordon", try node.schedulerName(nodeName)]), timeout: 60), "kubectl cordon", node: node)
  }

  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool { try drainResult(node, timeout: timeout).drained }

  func drainResult(_ node: NodeEndpoint, timeout: Double) throws -> DrainResult {
    let args = [
      "drain", try node.schedulerName(nodeName), "--ignore-daemonsets", "--delete-emptydir-data", "--grace-period=\(Int(gracePeriod))",
      "--timeout=\(max(1, Int(timeout)))s",
    ]
    let result = HookRunner.run(kubectl(args), timeout: timeout + 30)
    let blocking = Self.unevicted(result.output)
    if result.timedOut || Self.isTimeout(result.output) {
      return DrainResult(drained: false, cause: Self.cause(result.output, pods: blocking, timeout: timeout))
    }
    guard result.status == 0 else {
      let detail = blocking.isEmpty ? "" : " (pods not evicted: \(blocking.joined(separator: ", ")))"
      throw Diagnostic.error(
        "rollout.hook",
        "kubectl drain of \(node.name) failed (exit \(result.status))\(detail): \(result.output.suffix(300).trimmingCharacters(in: .whitespacesAndNewlines))",
        subject: "node \(node.name) on \(node.host)")
    }
    return DrainResult(drained: true)
  }

  /// kubectl's words for a drain that ran out of time: `global timeout reached` (an eviction still
  /// refused at `--timeout`), or `timed out waiting for the condition` (pods still terminating).
  static func isTimeout(_ output: String) -> Bool {
    output.contains("global timeout reached") || output.contains("timed out waiting for the condition")
  }

  /// The pods kubectl could not evict, as `namespace/name`, in order, once each: from its
  /// `error when evicting pods/"NAME" -n "NAMESPACE"` lines.
  static func unevicted(_ output: String) -> [String] {
    var found: [String] = []
    for line in output.split(separator: "\n") {
      guard let range = line.range(of: "error when evicting pods/\"") else { continue }
      let rest = line[range.upperBound...]
      guard let nameEnd = rest.firstIndex(of: "\"") else { continue }
      let name = rest[..<nameEnd]
      var namespace = "default"
      if let ns = rest[nameEnd...].range(of: "-n \""), let end = rest[ns.upperBound...].firstIndex(of: "\"") {
        namespace = String(rest[ns.upperBound..<end])
      }
      let pod = Terminal.printable(String((namespace + "/" + name).prefix(260)))
      if !found.contains(pod) { found.append(pod) }
      if found.count >= 20 { break }
    }
    return found
  }

  static func cause(_ output: String, pods: [String], timeout: Double) -> String {
    let listed = pods.joined(separator: ", ")
    if output.contains("disruption budget") {
      return "a PodDisruptionBudget refused evicting \(listed.isEmpty ? "a pod" : listed) until the drain's \(Int(timeout))s ran out"
    }
    if !pods.isEmpty { return "pods not evicted within \(Int(timeout))s: \(listed)" }
    return "pods still terminating after \(Int(timeout))s"
  }

  func uncordon(_ node: NodeEndpoint) throws {
    try Drainers.check(HookRunner.run(kubectl(["uncordon", try node.schedulerName(nodeName)]), timeout: 60), "kubectl uncordon", node: node)
  }
}
