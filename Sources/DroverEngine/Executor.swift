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
/// Bounded parallelism: at most `parallelismPerHost` nodes in flight per host (libvirtd serves
/// five requests per connection at once). With at least `laneThreshold` nodes on a host, each
/// worker asks the host for a lane — a connection of its own (`HostBackend.lane`) — since the
/// daemon serves connections in parallel while threads sharing one connection hand every reply
/// between them; a worker without one shares the host's. Actions for the same node run in plan
/// order.
/// `shouldStop` is polled before every step: after SIGINT the steps in flight finish, nothing new
/// starts, and the next plan shows exactly what remains.
public final class Executor: @unchecked Sendable {
  let backends: [String: any HostBackend]
  let parallelismPerHost: Int
  let shouldStop: @Sendable () -> Bool
  let onEvent: @Sendable (ApplyEvent) -> Void
  /// Fills in how a node boots (its overlay disk, made through the backend given) just before
  /// it is defined.
  let prepare: @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition
  /// Nodes on one host from which its workers get lanes (below it, opening connections costs
  /// more than it saves).
  public static let laneThreshold = 16
  /// Workers of a host whose workers have lanes: measured at 1,000 creates on this 2-core
  /// machine, 4 lanes took 1.0 s, 8 lanes 0.78 s, 16 lanes 0.72–0.84 s.
  let lanesPerHost = 8
  /// Proved before every action (#41): a run that lost its locks acts no more.
  let fence: Fence

  public init(
    backends: [String: any HostBackend], parallelismPerHost: Int = 4, shouldStop: @escaping @Sendable () -> Bool = { false },
    prepare: @escaping @Sendable (NodeDefinition, any HostBackend) throws -> NodeDefinition = { node, _ in node },
    onEvent: @escaping @Sendable (ApplyEvent) -> Void = { _ in }, fence: Fence = .none
  ) {
    self.fence = fence
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
    let result = ResultBox()
    let perHost = groups.sorted { $0.key < $1.key }.map(\.value)
    BlockingFanOut.forEach(perHost.count, width: perHost.count) { h in
      runHost(perHost[h], into: result)
    }
    return result.value.withLock { $0 }
  }

  /// What the workers of every host record into, and the next node each host hands out.
  final class ResultBox: Sendable {
    let value = Mutex(ApplyResult())
  }
  final class Counter: Sendable {
    let value = Mutex(0)
  }

  /// One worker of a host: where it is (a node, and the first of its actions not reported
  /// yet) and the watch over its inline calls. Reports go through `at`'s lock, so the worker and
  /// its waiter never both report an action, nor neither.
  final class Worker: Sendable {
    let watch = CallWatch()
    let at = Mutex<(group: Int, action: Int)?>(nil)
  }

  /// One host's nodes on its workers. A wide host's workers get lanes whose calls run inline,
  /// watched here: when one outlives its deadline this thread stops waiting for that worker,
  /// fails the action it was on and skips the rest of that node (the host's later calls are
  /// refused at once: `Deadline.StillStuck`). A deadline later, every worker still running
  /// (waiting on something a stuck one holds, such as a lock) is given up on too: no wait here
  /// is unbounded.
  func runHost(_ work: [[PlannedAction]], into result: ResultBox) {
    let host = work[0][0].host
    let shared = backends[host]
    let wide = work.count >= Self.laneThreshold
    let width = max(1, min(wide ? lanesPerHost : parallelismPerHost, work.count))
    let next = Counter()
    let finished = DispatchSemaphore(value: 0)
    let workers = (0..<width).map { _ in Worker() }
    for worker in workers {
      let thread = Thread { [self] in
        let lane = wide && !shouldStop() ? shared?.lane(watchedBy: worker.watch) : nil
        runWorker(work, next: next, worker: worker, lane: lane, into: result)
        if worker.watch.exit() { finished.signal() }
      }
      thread.stackSize = 1 << 20
      thread.start()
    }
    var waiting = Set(workers.indices)
    var stalled: (since: UInt64, seconds: Double)?
    while !waiting.isEmpty {
      _ = finished.wait(timeout: .now() + 0.25)  // a worker ended, or time to look at the watches
      let now = DispatchTime.now().uptimeNanoseconds
      for i in waiting {
        let worker = workers[i]
        if worker.watch.hasExited {
          waiting.remove(i)
          continue
        }
        worker.at.withLock { at in
          let late: CallWatch.Abandoned?
          if let stalled, now >= stalled.since + UInt64(max(0, stalled.seconds) * 1e9) {
            late = worker.watch.abandon(reason: "waiting after the host stopped answering", seconds: stalled.seconds)
          } else {
            late = worker.watch.abandonIfOverdue(now: now)
          }
          guard let late else { return }
          waiting.remove(i)
          stalled = stalled ?? (now, late.seconds)
          if let position = at, position.action < work[position.group].count {
            let node = work[position.group], first = position.action
            let diagnostic = Diagnostic.error(
              "apply.step", "\(host): \(late) (--call-timeout); nothing more is done on it", subject: "node \(node[first].node) on \(host)")
            result.value.withLock { $0.failed.append((node[first], diagnostic)) }
            onEvent(ApplyEvent(time: Date(), action: node[first], status: .failed, message: diagnostic.message))
            for action in node[(first + 1)...] {
              result.value.withLock { $0.skipped.append(action) }
              onEvent(ApplyEvent(time: Date(), action: action, status: .skipped, message: "an earlier step of this node failed"))
            }
          }
          at = nil
        }
      }
    }
    // Nodes no worker took (every one of them was given up on): reported, never silently dropped.
    let untaken = next.value.withLock { value -> Range<Int> in
      defer { value = max(value, work.count) }
      return min(value, work.count)..<work.count
    }
    for i in untaken {
      for action in work[i] {
        result.value.withLock { $0.skipped.append(action) }
        onEvent(ApplyEvent(time: Date(), action: action, status: .skipped, message: "not started: \(host) stopped answering"))
      }
    }
  }

  /// A worker's loop: takes the next node of the host and runs its actions in order, on `lane`
  /// when it has one. Once its waiter gave up on it, it records nothing more (the waiter did).
  func runWorker(_ work: [[PlannedAction]], next: Counter, worker: Worker, lane: (any HostBackend)?, into result: ResultBox) {
    while true {
      // Taking a node and becoming its reporter is one step: a node is never taken unreported.
      let taken = worker.at.withLock { at -> Int? in
        guard !worker.watch.isAbandoned else { return nil }
        let i = next.value.withLock { value -> Int in
          defer { value += 1 }
          return value
        }
        guard i < work.count else { return nil }
        at = (i, 0)
        return i
      }
      guard let i = taken else { return }
      var failedBefore = false
      for (a, action) in work[i].enumerated() {
        /// Reports action `a` and moves past it, unless the waiter gave up on this worker.
        func report(_ body: () -> Void) -> Bool {
          worker.at.withLock { at in
            guard !worker.watch.isAbandoned else { return false }
            body()
            at = (i, a + 1)
            return true
          }
        }
        if failedBefore || shouldStop() {
          let stopped = !failedBefore
          guard report({
            result.value.withLock {
              $0.skipped.append(action)
              if stopped { $0.interrupted = true }
            }
            onEvent(ApplyEvent(time: Date(), action: action, status: .skipped, message: stopped ? "interrupted" : "an earlier step of this node failed"))
          }) else { return }
          continue
        }
        onEvent(ApplyEvent(time: Date(), action: action, status: .started, message: nil))
        let outcome = Result { try run(action, on: lane) }
        let reported = report {
          switch outcome {
          case .success(let created):
            result.value.withLock {
              $0.done.append(action)
              if let created { $0.created[action.node] = created }
            }
            onEvent(ApplyEvent(time: Date(), action: action, status: .done, message: nil))
          case .failure(let error):
            let diagnostic = Diagnostic.first(of: error, code: "apply.step", subject: "node \(action.node) on \(action.host)")
            result.value.withLock { $0.failed.append((action, diagnostic)) }
            onEvent(ApplyEvent(time: Date(), action: action, status: .failed, message: diagnostic.message))
            failedBefore = true
          }
        }
        guard reported else { return }
      }
      worker.at.withLock { $0 = nil }
    }
  }

  func backend(_ uri: String) throws -> any HostBackend {
    guard let backend = backends[uri] else {
      throw Diagnostic.error("apply.no-connection", "no connection to \(uri)", subject: "host \(uri)")
    }
    return backend
  }

  /// Runs one action, on `lane` when the worker has one; returns the new domain of a create.
  func run(_ action: PlannedAction, on lane: (any HostBackend)? = nil) throws -> ApplyResult.CreatedNode? {
    let backend = try lane ?? backend(action.host)
    try fence.check("\(action.kind.rawValue) \(action.node)")
    switch try action.payload() {
    case .create(let node):
      let prepared = try prepare(node, backend)
      // Preparing a disk can take minutes (a bake, an upload): proved again right before the define.
      try fence.check("create \(action.node)")
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
