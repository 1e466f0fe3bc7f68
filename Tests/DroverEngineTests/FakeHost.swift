import DroverBasics
import DroverEngine
import DroverModel
import DroverRollout
import Foundation
import Synchronization

/// The moment a simulated Drover process dies, shared by its journal, its host and its drainer.
///
/// Boundaries are counted — every journal record made durable and every change a host makes —
/// and after the `at`-th the "process" is gone: the action that reached it has happened (as after
/// SIGKILL right behind a durable write), and every later journal append, host call or drain
/// throws, so nothing more changes. A resumed run uses a fresh `SimulatedCrash`.
/// One order for everything the fakes see (which came first: a domain's creation or a cordon).
enum FakeOrder {
  static let counter = Mutex(0)
  static func next() -> Int { counter.withLock { $0 += 1; return $0 } }
}

final class SimulatedCrash: JournalFaults, @unchecked Sendable {
  struct Gone: Error, CustomStringConvertible {
    var description: String { "the process is gone (simulated crash)" }
  }
  private let state: Mutex<(seen: Int, gone: Bool, at: String?)>
  let at: Int?

  init(at: Int? = nil) {
    self.at = at
    state = Mutex((0, false, nil))
  }

  /// Throws once the process is gone.
  func check() throws {
    if state.withLock({ $0.gone }) { throw Gone() }
  }

  /// A boundary was crossed (`what` happened and is durable); the crash may come now.
  func crossed(_ what: String) throws {
    let gone = state.withLock { s -> Bool in
      if s.gone { return true }
      s.seen += 1
      if s.seen == at {
        s.gone = true
        s.at = what
      }
      return s.gone
    }
    if gone { throw Gone() }
  }

  /// How many boundaries the run crossed (a run without a crash: how many there are to crash at).
  var boundaries: Int { state.withLock { $0.seen } }
  var crashedAt: String? { state.withLock { $0.at } }

  func beforeAppend() throws { try check() }
  func afterDurable(_ record: JournalRecord) throws {
    try crossed("journal \(record.event.rawValue)\(record.step.map { ":" + $0 } ?? "")\(record.node.map { " " + $0 } ?? "")")
  }
}

/// An in-memory hypervisor host for runner tests: domains with sealed-as-verified records,
/// running or not, each with a real overlay file (a sparse file of the node's disk size in the
/// host's folder, deleted with the domain), injected faults and a simulated crash. Runner
/// sequences run against it in milliseconds; the same sequences on libvirt's test driver and
/// real VMs are in the CLI and system tests.
final class FakeHost: HostBackend, @unchecked Sendable {
  struct Domain {
    var name: String
    var uuid: String
    var ownership: NodeOwnership
    var running: Bool
    var file: String
    /// When it was created (`FakeOrder`).
    var born = FakeOrder.next()
  }

  let uri: String
  let bootsNodes = false
  let folder: String
  let project: String
  var crash: SimulatedCrash
  /// What the host says it has (nil: it says nothing, as a simulated one).
  var capacity: HostCapacity? = nil
  /// Every change made, in order (`create web-1-g2`, `delete web-1`, …).
  private let book = Mutex<(domains: [Domain], calls: [String], failCreate: [String: String], next: Int)>(([], [], [:], 0))

  init(uri: String, project: String, crash: SimulatedCrash = SimulatedCrash()) throws {
    self.uri = uri
    self.project = project
    self.crash = crash
    folder = FileManager.default.temporaryDirectory.appendingPathComponent("drover-fakehost-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: folder) }

  var domains: [Domain] { book.withLock { $0.domains } }
  var calls: [String] { book.withLock { $0.calls } }
  /// The overlay files really on disk, by name.
  var overlayFiles: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() }

  /// A create of a domain named `node` fails with `why` (before anything is made).
  func failCreate(of node: String, _ why: String) { book.withLock { $0.failCreate[node] = why } }

  /// How long each create takes (an injected delay, seconds).
  private let createDelay = Mutex(0.0)
  func slowCreates(_ seconds: Double) { createDelay.withLock { $0 = seconds } }
  /// Creates in flight now, and the most there ever were at once.
  private let inFlight = Mutex((now: 0, most: 0))
  var mostCreatesAtOnce: Int { inFlight.withLock { $0.most } }

  func overlay(_ o: NodeOwnership) -> String { OverlayName(project: project, pool: o.pool, index: o.index, generation: o.generation).volume }

  /// Puts a node there as an earlier apply would have (no crash counted).
  func seed(_ o: NodeOwnership) throws {
    _ = try make(o, counted: false)
  }

  private func make(_ o: NodeOwnership, counted: Bool) throws -> String {
    try crash.check()
    if let why = book.withLock({ $0.failCreate[o.node] }) { throw Diagnostic.error("host.create", why, subject: "node \(o.node)") }
    let file = "\(folder)/\(overlay(o))"
    // A real file for the disk: created exclusively (an overlay of that name must not exist),
    // sized to the node's disk, sparse.
    let fd = open(file, O_CREAT | O_EXCL | O_WRONLY, 0o600)
    guard fd >= 0 else { throw Diagnostic.error("host.create", "overlay \(overlay(o)) exists already", subject: "node \(o.node)") }
    defer { close(fd) }
    guard ftruncate(fd, off_t(o.diskMiB) << 20) == 0 else { throw Diagnostic.error("host.create", "cannot size \(file)") }
    let uuid = try book.withLock { b -> String in
      // As libvirt: a second domain of one name is refused.
      if b.domains.contains(where: { $0.name == o.node }) {
        unlink(file)
        throw Diagnostic.error("host.create", "a domain named \(o.node) exists already", subject: "node \(o.node)")
      }
      b.next += 1
      let uuid = "fake-\(b.next)-\(o.node)"
      b.domains.append(Domain(name: o.node, uuid: uuid, ownership: o, running: true, file: file))
      if counted { b.calls.append("create \(o.node) g\(o.generation) \(o.image)") }
      return uuid
    }
    if counted { try crash.crossed("create \(o.node)") }
    return uuid
  }

  private func change(_ call: String, node: String, uuid: String, _ body: (inout Domain) throws -> Void) throws {
    try crash.check()
    try book.withLock { b in
      guard let i = b.domains.firstIndex(where: { $0.name == node && $0.uuid == uuid }) else {
        throw Diagnostic.error("host.domain", "no domain \(node) with UUID \(uuid)", subject: "node \(node)")
      }
      try body(&b.domains[i])
      b.calls.append("\(call) \(node)")
    }
    try crash.crossed("\(call) \(node)")
  }

  func observe(detailed: Bool) throws -> ObservedHost {
    try crash.check()
    let domains = book.withLock { $0.domains }
    let observed = domains.map { d in
      var o = d.ownership
      o.disk = "drover-images/\(overlay(o))"
      // The domain is what its record says (nothing here changes one behind Drover's back).
      let mem = UInt64(o.memoryMiB) * 1024
      let shape = DomainShape(
        vcpu: o.vcpu, maxVcpu: o.vcpu, memoryKiB: mem, liveVcpu: o.vcpu, liveMemoryKiB: mem, disks: [o.disk], networks: o.network.map { [$0] } ?? [],
        title: nil)
      return ObservedDomain(
        name: d.name, uuid: d.uuid, state: d.running ? "running" : "shut off", isActive: d.running, ownership: o,
        metadataDigest: "m-\(d.uuid)-\(o.generation)-\(o.vcpu)-\(o.memoryMiB)-\(o.labels.sorted { $0.key < $1.key })", trust: .verified, actual: shape)
    }
    var host = ObservedHost(uri: uri, domains: observed, overlays: overlayFiles, poolVolumes: overlayFiles)
    host.capacity = capacity
    return host
  }

  func create(_ node: NodeDefinition) throws -> String {
    inFlight.withLock {
      $0.now += 1
      $0.most = max($0.most, $0.now)
    }
    defer { inFlight.withLock { $0.now -= 1 } }
    let delay = createDelay.withLock { $0 }
    if delay > 0 { Thread.sleep(forTimeInterval: delay) }
    return try make(node.ownership, counted: true)
  }
  func start(node: String, uuid: String) throws { try change("start", node: node, uuid: uuid) { $0.running = true } }
  func resume(node: String, uuid: String) throws { try change("resume", node: node, uuid: uuid) { $0.running = true } }
  func reset(node: String, uuid: String) throws { try change("reset", node: node, uuid: uuid) { $0.running = true } }
  func update(node: String, uuid: String, to ownership: NodeOwnership, restart: Bool) throws {
    try change("update", node: node, uuid: uuid) { $0.ownership = ownership }
  }
  func keep(node: String, uuid: String, as ownership: NodeOwnership, shutdownSeconds: Double) throws {
    try change("keep", node: node, uuid: uuid) {
      $0.running = false
      $0.ownership = ownership
    }
  }
  func revive(node: String, uuid: String, as ownership: NodeOwnership) throws {
    try change("revive", node: node, uuid: uuid) {
      $0.running = true
      $0.ownership = ownership
    }
  }
  func adopt(node: String, uuid: String, as ownership: NodeOwnership) throws {
    try change("adopt", node: node, uuid: uuid) { $0.ownership = ownership }
  }

  func delete(node: String, uuid: String) throws {
    try crash.check()
    let file = try book.withLock { b -> String in
      guard let i = b.domains.firstIndex(where: { $0.name == node && $0.uuid == uuid }) else {
        throw Diagnostic.error("host.domain", "no domain \(node) with UUID \(uuid)", subject: "node \(node)")
      }
      let file = b.domains[i].file
      b.domains.remove(at: i)
      b.calls.append("delete \(node)")
      return file
    }
    // As libvirt's: the domain goes first, then its overlay; a crash between leaves an orphan.
    try crash.crossed("undefine \(node)")
    guard unlink(file) == 0 else { throw Diagnostic.error("host.volume", "cannot delete \(file)") }
    try crash.crossed("delete overlay of \(node)")
  }

  func removeOrphanOverlay(volume: String) throws {
    try crash.check()
    let used = book.withLock { $0.domains.map(\.file) }
    let file = "\(folder)/\(volume)"
    guard !used.contains(file), OverlayName(volume: volume) != nil else { throw Diagnostic.error("host.volume", "\(volume) is in use or not an overlay") }
    unlink(file)
    book.withLock { $0.calls.append("remove orphan \(volume)") }
    try crash.crossed("remove orphan \(volume)")
  }

  func isRunning(node: String) -> Bool? { book.withLock { b in b.domains.first { $0.name == node }?.running } }
}

/// A scheduler stand-in for drains: remembers which nodes are cordoned, answers drains as
/// scripted, and stops with the simulated process.
final class FakeDrainer: Draining, @unchecked Sendable {
  let crash: () -> SimulatedCrash
  /// Cordoned names, each with when it was cordoned (`FakeOrder`).
  private let book = Mutex<(cordoned: [String: Int], calls: [String], timeouts: Set<String>)>(([:], [], []))

  init(crash: @escaping () -> SimulatedCrash) { self.crash = crash }

  /// Drains of these domains time out.
  func timeOut(_ nodes: Set<String>) { book.withLock { $0.timeouts = nodes } }
  var cordoned: Set<String> { book.withLock { Set($0.cordoned.keys) } }
  /// The domains Drover left cordoned: cordoned after they were created and never put back. (A
  /// cordon of an earlier domain of the same name is the scheduler's business: see #42.)
  func leftCordoned(_ domains: [FakeHost.Domain]) -> [String] {
    let marks = book.withLock { $0.cordoned }
    return domains.filter { d in marks[d.name].map { $0 > d.born } ?? false }.map(\.name).sorted()
  }
  var calls: [String] { book.withLock { $0.calls } }

  func cordon(_ node: NodeEndpoint) throws {
    try crash().check()
    book.withLock {
      $0.cordoned[node.name] = FakeOrder.next()
      $0.calls.append("cordon \(node.name)")
    }
  }
  func drain(_ node: NodeEndpoint, timeout: Double) throws -> Bool {
    try crash().check()
    return book.withLock {
      $0.calls.append("drain \(node.name)")
      return !$0.timeouts.contains(node.name)
    }
  }
  func uncordon(_ node: NodeEndpoint) throws {
    try crash().check()
    book.withLock {
      $0.cordoned[node.name] = nil
      $0.calls.append("uncordon \(node.name)")
    }
  }
}

/// Health as scripted: nodes on the listed images (or with the listed domain names) never become
/// healthy; every answer is immediate.
struct FakeProber: HealthProbing {
  var sickImages: Set<String> = []
  var sickNodes: Set<String> = []
  /// When set, each probe adds "node: check, check" (the checks it was asked to run).
  var log: ProbeLog? = nil
  func unhealthyReason(_ node: NodeEndpoint, checks: [HealthCheckSpec], deadline: Date, shouldStop: @Sendable () -> Bool) -> String? {
    log?.lines.withLock { $0.append("\(node.name): \(checks.map(HealthChecker.describe).joined(separator: ", "))") }
    if sickImages.contains(node.image) || sickNodes.contains(node.name) { return "console never said ready (scripted)" }
    return nil
  }
}

/// What a `FakeProber` was asked to check, in order.
final class ProbeLog: Sendable {
  let lines = Mutex<[String]>([])
}
