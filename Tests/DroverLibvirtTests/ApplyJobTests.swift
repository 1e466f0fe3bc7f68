import DroverBake
import DroverBasics
import DroverEngine
import DroverLibvirt
import DroverModel
import DroverPlan
import Foundation
import Synchronization
import Testing

/// #34: the apply job that `apply`, `rollout resume|abort` and `host drain` run, driven
/// in-process with an injected approver and clock on the test driver (real overlay volumes in
/// its image pool): approval asked once and only for a plan made now, the key made only after a
/// yes, stale and drain-only plans refused before anything is asked or changed.
@Suite(.serialized) struct ApplyJobTests {
  /// Answers as told and writes down each time it was asked, in the order of everything said.
  final class Approver: DroverEngine.Approver, @unchecked Sendable {
    let answer: Approval
    let log: Log
    init(_ answer: Approval, log: Log) {
      self.answer = answer
      self.log = log
    }
    func approve(_ plan: Plan) -> Approval {
      log.append("asked: \(plan.actions.count) actions")
      return answer
    }
  }

  /// What was said and asked, in order.
  final class Log: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
  }

  /// A clock that says what the test says.
  struct StoppedClock: EngineClock {
    let at: Date
    func now() -> Date { at }
  }

  /// One project on a private test-driver world, its state in a fresh 0700 folder; the keyring
  /// starts without a key unless `keyed`.
  final class Project: @unchecked Sendable {
    let name = TestWorld.unique("job")
    let world: TestWorld
    let backend: LibvirtHostBackend
    let keyring: Keyring
    let state: String
    let log = Log()

    init(keyed: Bool = false) throws {
      let base = try TestWorld.isolated(project: name)
      keyring = Keyring(project: name, key: keyed ? TestWorld.key(name) : nil)
      backend = LibvirtHostBackend(connection: base.backend.connection, keyring: keyring, imagePool: "drover-images")
      world = TestWorld(backend: backend)
      state = FileManager.default.temporaryDirectory.appendingPathComponent("drover-job-\(name)").path
      try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    deinit { try? FileManager.default.removeItem(atPath: state) }

    func pool(replicas: Int) -> PoolSpec { world.pool("web", replicas: replicas) }

    func context(_ pools: [PoolSpec], answer: Approval, clock: any EngineClock = SystemClock()) -> RunContext {
      let log = self.log
      return RunContext(
        project: name, stateDirectory: state, pools: pools, backends: [world.uri: backend], declaredHosts: [world.uri], keyring: keyring, state: .local,
        isRememberable: { _ in true }, clock: clock, approver: Approver(answer, log: log), lockCommand: "drover apply (test)",
        say: { notice in
          switch notice {
          case .planned(let plan, _): log.append("planned: \(plan.actions.count) actions")
          case .keyCreated: log.append("key created")
          case .warnings, .journalDamaged, .phase: break
          }
        })
    }

    /// The executor the command would build, with real overlays from `NodeImages`.
    func engine(_ context: RunContext) -> ApplyEngine {
      let images = NodeImages(catalogue: ImageCatalogue(directory: state + "/images"), poolName: "drover-images", consoleDirectory: state)
      let backend = self.backend
      return ApplyEngine(
        pools: context.pools, backends: context.backends, project: context.project, journalDirectory: context.stateDirectory + "/journal",
        keyring: context.keyring, state: context.state, hooks: ApplyEngine.Hooks(prepare: { node, lane in try images.prepare(node, host: lane as? any ImageHost ?? backend) }))
    }

    func run(_ request: ApplyRequest, pools: [PoolSpec], answer: Approval) throws(ApplyRefusal) -> ApplyJobResult {
      try ApplyJob.run(request, in: context(pools, answer: answer)) { context in engine(context) }
    }

    var nodes: [ObservedDomain] { (try? backend.observe().domains.filter { $0.ownership?.project == name }) ?? [] }
    var overlays: [String] {
      (try? backend.connection.storagePool(named: "drover-images")?.volumeNames().filter { OverlayName(volume: $0)?.project == name }) ?? []
    }
    var keyFile: Bool { FileManager.default.fileExists(atPath: ProjectKeyStore.path(in: state)) }
    var said: [String] { log.all }
  }

  @Test func aYesMakesTheKeyThenTheNodesAndANoChangesNothing() throws {
    let no = try Project()
    let declined = try no.run(ApplyRequest(), pools: [no.pool(replicas: 2)], answer: .declined)
    guard case .declined(let plan) = declined else { Issue.record("\(declined)"); return }
    #expect(plan.actions.count == 2)
    #expect(no.said == ["planned: 2 actions", "asked: 2 actions"], "shown, then asked once")
    #expect(no.nodes.isEmpty && no.overlays.isEmpty && !no.keyFile, "a no made no node, no disk and no key")

    let yes = try Project()
    let ran = try yes.run(ApplyRequest(), pools: [yes.pool(replicas: 2)], answer: .approved)
    guard case .ran(_, let outcome) = ran else { Issue.record("\(ran)"); return }
    #expect(outcome.exitStatus == 0 && outcome.added == 2)
    #expect(yes.said == ["planned: 2 actions", "asked: 2 actions", "key created"], "the key is made after the yes, before any node")
    #expect(yes.keyFile && yes.keyring.key != nil)
    #expect(yes.nodes.count == 2 && yes.nodes.allSatisfy { $0.trust == .verified }, "each node's record is sealed with the new key")
    #expect(yes.overlays.count == 2, "each node has its own overlay")

    // Nothing left to do: no question, no change.
    let again = try yes.run(ApplyRequest(), pools: [yes.pool(replicas: 2)], answer: .declined)
    guard case .noChanges = again else { Issue.record("\(again)"); return }
    #expect(yes.said.filter { $0.hasPrefix("asked") }.count == 1, "a plan without changes is never put to the approver")
    _ = try yes.run(ApplyRequest(), pools: [yes.pool(replicas: 0)], answer: .approved)
    #expect(yes.nodes.isEmpty && yes.overlays.isEmpty)
  }

  @Test func nobodyToAskIsARefusalThatChangesNothing() throws {
    let p = try Project()
    let why = Diagnostic.error("apply.approval", "standard input is not a terminal, so apply cannot ask for approval")
    #expect {
      try p.run(ApplyRequest(), pools: [p.pool(replicas: 1)], answer: .cannotAsk(why))
    } throws: { error in
      (error as? ApplyRefusal)?.diagnostics.map(\.code) == ["apply.approval"]
    }
    #expect(p.nodes.isEmpty && p.overlays.isEmpty && !p.keyFile)
  }

  @Test func aStaleSavedPlanIsRefusedWithoutAskingAndAnUnchangedOneRunsWithoutAsking() throws {
    let p = try Project(keyed: true)
    let two = p.pool(replicas: 2)
    let options = try ApplyJob.planOptions(ApplyRequest(), in: p.context([two], answer: .declined))
    let (saved, _) = makePlan(pools: [two], observed: WorldObserver.observe([p.backend]), options: options)
    // The spec moved on since the plan was saved: refused, nobody asked, nothing made.
    #expect {
      try p.run(ApplyRequest(saved: saved, savedFrom: "web.plan"), pools: [p.pool(replicas: 3)], answer: .approved)
    } throws: { error in
      let refusal = error as? ApplyRefusal
      return refusal?.saysNoActionTaken == true && refusal?.diagnostics.contains { $0.code == "plan.stale" } == true
    }
    #expect(p.said.isEmpty, "a saved plan is never shown or put to the approver: \(p.said)")
    #expect(p.nodes.isEmpty)
    // The file as saved, the world as it was: it runs exactly, without a question (it was reviewed).
    let ran = try p.run(ApplyRequest(saved: saved, savedFrom: "web.plan"), pools: [two], answer: .declined)
    guard case .ran(let plan, let outcome) = ran else { Issue.record("\(ran)"); return }
    #expect(plan.actions == saved.actions && outcome.added == 2 && p.said.isEmpty)
    _ = try p.run(ApplyRequest(), pools: [p.pool(replicas: 0)], answer: .approved)
  }

  @Test func aDrainRefusesAPlanWithOtherChanges() throws {
    let p = try Project(keyed: true)
    #expect {
      // Draining another host while the pool still wants a node here: the create is another change.
      try p.run(ApplyRequest(kind: .hostDrain, targets: ["web"], draining: ["test:///drained"]), pools: [p.pool(replicas: 1)], answer: .approved)
    } throws: { error in
      (error as? ApplyRefusal)?.diagnostics.map(\.code) == ["host.drain-other-changes"]
    }
    #expect(p.said.isEmpty && p.nodes.isEmpty, "refused before it was shown, asked or done")
  }

  /// What a drain of a host covers: the declared pools with nodes there or a rollout in progress.
  @Test func aDrainCoversThePoolsThereAndThoseMidRollout() throws {
    let p = try Project(keyed: true)
    _ = try p.run(ApplyRequest(), pools: [p.pool(replicas: 1)], answer: .approved)
    let observed = WorldObserver.observe([p.backend])
    let uri = p.world.uri
    #expect(ApplyJob.drainScope(host: uri, observed: observed, project: p.name, declared: ["web", "db"], active: []) == (["web"], []))
    #expect(ApplyJob.drainScope(host: uri, observed: observed, project: p.name, declared: ["web", "db"], active: ["db"]) == (["db", "web"], []))
    #expect(ApplyJob.drainScope(host: uri, observed: observed, project: p.name, declared: ["db"], active: []) == ([], ["web"]), "undeclared nodes stay")
    #expect(ApplyJob.drainScope(host: uri, observed: observed, project: "another", declared: ["web"], active: []) == ([], []), "another project's nodes are not ours")
    #expect(ApplyJob.drainScope(host: "test:///elsewhere", observed: observed, project: p.name, declared: ["web"], active: []) == ([], []))
    _ = try p.run(ApplyRequest(), pools: [p.pool(replicas: 0)], answer: .approved)
  }

  @Test func theClockAndTheLocksAreTheContexts() throws {
    let p = try Project(keyed: true)
    let noon = Date(timeIntervalSince1970: 1_800_000_000)
    let context = p.context([p.pool(replicas: 1)], answer: .approved, clock: StoppedClock(at: noon))
    #expect(context.clock.now() == noon)
    // The pool's lock is held while the job runs and released after it.
    let held = Mutex(false)
    let ran = try ApplyJob.run(ApplyRequest(), in: context) { context in
      held.withLock { $0 = PoolLock.isHeld(pool: "web", directory: context.stateDirectory + "/locks", state: context.state) }
      return p.engine(context)
    }
    guard case .ran(_, let outcome) = ran else { Issue.record("\(ran)"); return }
    #expect(outcome.added == 1 && held.withLock { $0 })
    #expect(!PoolLock.isHeld(pool: "web", directory: p.state + "/locks", state: .local))
    _ = try p.run(ApplyRequest(), pools: [p.pool(replicas: 0)], answer: .approved)
  }

  /// A clock the test moves.
  final class SteppedClock: EngineClock, @unchecked Sendable {
    private let at: Mutex<Date>
    init(_ start: Date) { at = Mutex(start) }
    func now() -> Date { at.withLock { $0 } }
    func step(_ seconds: Double) { at.withLock { $0 = $0.addingTimeInterval(seconds) } }
  }

  /// The heal pass is a job of its own over the same context: its time is the context's clock,
  /// so a test steps past `repair_after` without waiting, and the gentlest rung (start) brings
  /// a node back on its own domain and disk.
  @Test func aHealPassJudgesByTheContextsClockAndStartsAStoppedNodeOnItsOwnDisk() throws {
    let p = try Project(keyed: true)
    var pool = p.pool(replicas: 2)
    var remediation = RemediationSpec(unhealthyAfter: .minutes(30), maxUnhealthy: .count(1))
    remediation.repairAfter = .minutes(10)
    pool.remediation = remediation
    _ = try p.run(ApplyRequest(), pools: [pool], answer: .approved)
    let stopped = try #require(try p.backend.connection.domain(named: "web-1"))
    let uuid = stopped.uuid
    try stopped.destroy()
    let clock = SteppedClock(Date())
    let context = p.context([pool], answer: .declined, clock: clock)
    let decisions = Mutex<[String]>([])
    func pass() throws -> HealJobOutcome {
      try HealJob.run(
        HealRequest(), in: context, engine: { p.engine($0) },
        decided: { pass in decisions.withLock { $0.append(pass.decisions.map(\.why).joined(separator: "; ")) } }, repaired: { _ in }, replaced: { _ in })
    }
    // Now: unhealthy, within repair_after: nothing done.
    let first = try pass()
    #expect(first.repairs.isEmpty && first.replaced == nil && first.status == 2, "\(decisions.withLock { $0 })")
    #expect((try? stopped.state()) == .shutoff)
    // Eleven minutes on (no wait): the start rung, on the same domain.
    clock.step(11 * 60)
    let second = try pass()
    #expect(second.repairs.map(\.repair.key) == ["web-1"] && second.repairs.allSatisfy { $0.failure == nil }, "\(decisions.withLock { $0 })")
    #expect(second.replaced == nil, "nothing replaced")
    let again = try #require(try p.backend.connection.domain(named: "web-1"))
    #expect(again.uuid == uuid && (try? again.state()) == .running, "the same domain, running again")
    #expect(p.overlays.count == 2, "its disk kept")
    _ = try p.run(ApplyRequest(), pools: [p.pool(replicas: 0)], answer: .approved)
  }

  @Test func eachJobNamesItsOutcome() {
    let names = Dictionary(uniqueKeysWithValues: ApplyJobKind.allCases.map { ($0, "\($0.verb) \($0.summaryEvent)") })
    #expect(
      names == [
        .apply: "Apply summary", .rolloutResume: "Apply summary", .rolloutAbort: "Apply summary", .hostDrain: "Apply summary",
        .heal: "Heal replacements", .rolloutUndo: "Apply summary", .rolloutFinish: "Apply summary",
      ])
    #expect(ApplyRequest(kind: .rolloutResume).resuming && ApplyRequest(kind: .rolloutAbort).resuming && !ApplyRequest(kind: .hostDrain).resuming)
  }
}
