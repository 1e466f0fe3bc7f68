import DroverBasics
import DroverModel
import DroverPlan
import Foundation
import Synchronization

/// One line of apply progress.
public struct ApplyEvent: Sendable {
  public enum Status: String, Sendable { case started, done, failed, skipped }
  public var time: Date
  public var action: PlannedAction
  public var status: Status
  public var message: String?
}

/// What an apply did.
public struct ApplyResult: Sendable {
  /// A domain this apply defined: its UUID and the record it was given (disk and digest filled in).
  public struct CreatedNode: Sendable {
    public var uuid: String
    public var ownership: NodeOwnership
  }

  public var done: [PlannedAction] = []
  /// Created nodes by name.
  public var created: [String: CreatedNode] = [:]
  public var failed: [(action: PlannedAction, error: Diagnostic)] = []
  public var skipped: [PlannedAction] = []
  public var interrupted = false

  public var succeeded: Bool { failed.isEmpty && skipped.isEmpty && !interrupted }
}

/// Executes a plan's create, start, update, delete and overlay actions against the hosts, exactly
/// and only those (replacements are rollouts: `RolloutRunner`).
///
/// Bounded parallelism: at most `parallelismPerHost` nodes in flight on one connection (libvirtd
/// serves five requests per connection at once). Actions for the same node run in plan order.
/// `shouldStop` is polled before every step: after SIGINT the steps in flight finish, nothing new
/// starts, and the next plan shows exactly what remains.
public final class Executor: @unchecked Sendable {
  let backends: [String: any HostBackend]
  let parallelismPerHost: Int
  let shouldStop: @Sendable () -> Bool
  let onEvent: @Sendable (ApplyEvent) -> Void
  /// Fills in how a node boots (its overlay disk) just before it is defined.
  let prepare: @Sendable (NodeDefinition, String) throws -> NodeDefinition

  public init(
    backends: [String: any HostBackend], parallelismPerHost: Int = 4, shouldStop: @escaping @Sendable () -> Bool = { false },
    prepare: @escaping @Sendable (NodeDefinition, String) throws -> NodeDefinition = { node, _ in node },
    onEvent: @escaping @Sendable (ApplyEvent) -> Void = { _ in }
  ) {
    self.backends = backends
    self.parallelismPerHost = parallelismPerHost
    self.shouldStop = shouldStop
    self.prepare = prepare
    self.onEvent = onEvent
  }

  public func apply(_ plan: Plan) -> ApplyResult {
    // Group by host, then by node, keeping plan order within a node.
    var groups: [String: [[PlannedAction]]] = [:]
    var position: [String: Int] = [:]
    for action in plan.actions {
      let key = "\(action.host)\u{0}\(action.node)"
      if let i = position[key] {
        groups[action.host]![i].append(action)
      } else {
        position[key] = groups[action.host, default: []].count
        groups[action.host, default: []].append([action])
      }
    }
    let result = Mutex(ApplyResult())
    let perHost = groups.sorted { $0.key < $1.key }.map(\.value)
    BlockingFanOut.forEach(perHost.count, width: perHost.count) { h in
      let work = perHost[h]
      let next = Mutex(0)
      BlockingFanOut.forEach(min(parallelismPerHost, work.count), width: parallelismPerHost) { _ in
        while true {
          let i = next.withLock { value -> Int in
            defer { value += 1 }
            return value
          }
          guard i < work.count else { return }
          var failedBefore = false
          for action in work[i] {
            if failedBefore || shouldStop() {
              result.withLock {
                $0.skipped.append(action)
                if !failedBefore { $0.interrupted = true }
              }
              onEvent(ApplyEvent(time: Date(), action: action, status: .skipped, message: failedBefore ? "an earlier step of this node failed" : "interrupted"))
              continue
            }
            onEvent(ApplyEvent(time: Date(), action: action, status: .started, message: nil))
            do {
              let created = try run(action)
              result.withLock {
                $0.done.append(action)
                if let created { $0.created[action.node] = created }
              }
              onEvent(ApplyEvent(time: Date(), action: action, status: .done, message: nil))
            } catch {
              let diagnostic = (error as? DiagnosticConvertible)?.diagnostics.first
                ?? Diagnostic.error("apply.step", "\(error)", subject: "node \(action.node) on \(action.host)")
              result.withLock { $0.failed.append((action, diagnostic)) }
              onEvent(ApplyEvent(time: Date(), action: action, status: .failed, message: diagnostic.message))
              failedBefore = true
            }
          }
        }
      }
    }
    return result.withLock { $0 }
  }

  func backend(_ uri: String) throws -> any HostBackend {
    guard let backend = backends[uri] else {
      throw Diagnostic.error("apply.no-connection", "no connection to \(uri)", subject: "host \(uri)")
    }
    return backend
  }

  /// Runs one action; returns the new domain of a create.
  func run(_ action: PlannedAction) throws -> ApplyResult.CreatedNode? {
    let backend = try backend(action.host)
    switch try action.payload() {
    case .create(let node):
      let prepared = try prepare(node, action.host)
      return ApplyResult.CreatedNode(uuid: try backend.create(prepared), ownership: prepared.ownership)
    case .start(let uuid):
      try backend.start(node: action.node, uuid: uuid)
    case .update(let uuid, let to, let restart):
      // Same domain, same disk: never a new overlay.
      try backend.update(node: action.node, uuid: uuid, to: to, restart: restart)
    case .delete(let uuid):
      try backend.delete(node: action.node, uuid: uuid)
    case .removeOverlay(let volume):
      try backend.removeOrphanOverlay(volume: volume)
    case .replace:
      // Replacements are rollouts (cordon, drain, new domain, health, old one removed); the
      // apply engine hands them to `RolloutRunner` and never here.
      throw Diagnostic.error(
        "apply.step", "replacement of \(action.node) reached the plain executor", subject: "node \(action.node) on \(action.host)",
        hint: "this is a bug in Drover: replacements run through the rollout engine")
    }
    return nil
  }
}
