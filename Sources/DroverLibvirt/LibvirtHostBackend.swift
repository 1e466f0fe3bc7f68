import DroverBasics
import DroverModel
import Foundation
import Libvirt
import Synchronization

/// `HostBackend` over one libvirt connection.
///
/// Observing costs one bulk call plus one metadata read per domain, eight in flight on the one
/// connection: libvirtd works on five requests per client at once and the rest wait queued in
/// the socket, so the daemon is never idle waiting for the next request. Measured at 1,000
/// domains over `test+unix`: observe took ~85 ms with 4 in flight, ~60 ms with 8. Every destructive call is
/// preceded by a fresh ownership check, whatever the plan said.
public final class LibvirtHostBackend: HostBackend, @unchecked Sendable {
  public let uri: String
  public let connection: Connection
  public let calls: LibvirtCallCounter
  /// Drover's image storage pool on this host (overlays live there), or nil when the caller has
  /// none (then no overlays are listed and no orphan can be removed).
  public let imagePool: String?
  /// Storage pool handles looked up by this connection (a handle stays valid while it is open).
  let pools = Mutex<[String: StoragePool]>([:])
  /// Seconds each operation on this host may take (`--call-timeout`).
  public var callTimeout: Double = 30
  /// Whether nodes here log their console into the host's image pool (a host with its own
  /// image folder), read back through this connection.
  public var consoleOnHost = false
  /// Opens the connection that carries volume streams (nil: streams use `connection`).
  var streamOpener: (@Sendable () throws -> Connection)?
  /// The stream connection, opened on first use, and the lock that lets one stream at a time
  /// use it. Why a connection of their own: libvirt's client crashed (in `virStreamFinish`)
  /// when a stream finished while other threads made calls on the same connection, as health
  /// checks and node steps do.
  let streamConnection = Mutex<Connection?>(nil)
  /// The operation that got no answer in time: after it, nothing more is tried on this host
  /// (shared with this backend's lanes: one host, one mark).
  let stall: StallMark
  /// Opens another connection to this host for a lane within the seconds given (nil: no lanes).
  var laneOpener: (@Sendable (Double) throws -> Connection)?
  /// A lane's calls run inline on its worker's thread under this watch (nil: `Deadline.run`).
  let watch: CallWatch?
  /// Nodes whose guest-agent ping is in flight (`pingAgent`).
  let agentPings = Mutex<Set<String>>([])
  /// Concurrent reads in flight on the connection (threads of `BlockingFanOut`). The in-process
  /// test driver (`test:///…`) has no round trip to overlap and one driver lock, so one reader.
  var parallelism: Int { HostDriver.isInProcess(uri: uri) ? 1 : 8 }

  /// Whether this host boots its domains, asked of libvirt once when the backend is made (its
  /// driver type), never read off the URI: libvirt's test driver defines and "runs" domains (and
  /// keeps storage pools and backed volumes in memory) but boots nothing.
  public let bootsNodes: Bool

  /// The project this process acts for and its record key: every record read is checked with
  /// it, every record written is sealed with it.
  public let keyring: Keyring

  /// - Parameter uri: the host's URI as pool files and records name it, when the connection was
  ///   opened with another (the same plus the machine's trust parameters).
  public init(connection: Connection, keyring: Keyring, imagePool: String? = nil, calls: LibvirtCallCounter = LibvirtCallCounter(), uri: String? = nil) {
    self.connection = connection
    self.keyring = keyring
    self.uri = uri ?? connection.uri
    self.imagePool = imagePool
    self.calls = calls
    self.bootsNodes = HostDriver.bootsNodes(driverType: try? connection.driverType())
    self.stall = StallMark()
    self.watch = nil
  }

  /// Whether a second connection to `target` sees this connection's domains and volumes. A host
  /// that boots nodes is one machine whatever the connection; libvirt's test driver (told by its
  /// driver type, `bootsNodes`) keeps one world per connection, except at `…/default`, whose world
  /// every connection in the process (in-process) or in libvirtd shares while one is open.
  func sharesItsWorld(across target: String) -> Bool {
    bootsNodes || URLComponents(string: target)?.path == "/default"
  }

  /// A lane of `parent`: its own connection, everything else shared.
  init(lane connection: Connection, of parent: LibvirtHostBackend, watch: CallWatch) {
    self.watch = watch
    self.connection = connection
    self.keyring = parent.keyring
    self.uri = parent.uri
    self.imagePool = parent.imagePool
    self.calls = parent.calls
    self.bootsNodes = parent.bootsNodes
    self.stall = parent.stall
    self.callTimeout = parent.callTimeout
    self.consoleOnHost = parent.consoleOnHost
    self.streamOpener = parent.streamOpener
  }

  /// Another connection to this host for one worker of a wide apply (see `HostBackend.lane`),
  /// opened within the call deadline; nil when this host has no lanes or the open fails (the
  /// worker then shares this connection). Lanes have no keepalive: their calls keep their
  /// deadline, and a daemon that dies closes their sockets.
  ///
  /// The open is not one of the host's calls: a slow one (an ssh handshake) only means this
  /// worker shares the host's connection; it never marks the host as stalled. A test-driver
  /// host gets lanes only at `…/default`, the one world libvirtd shares between connections.
  public func lane(watchedBy watch: CallWatch) -> (any HostBackend)? {
    guard let laneOpener, stall.value.withLock({ $0 }) == nil, Deadline.refusal(key: uri) == nil else { return nil }
    guard let opened = try? laneOpener(min(callTimeout, 15)) else { return nil }
    calls.record("lane-open")
    return LibvirtHostBackend(lane: opened, of: self, watch: watch)
  }

  /// Opens `uri` (read-only when asked) within `timeout` seconds, with libvirt's keepalive when
  /// given one (see `Connection.open`).
  /// Whether `uri` uses libvirt's libssh transport (see `connect` on keepalive).
  public static func usesLibssh(_ uri: String) -> Bool { uri.hasPrefix("qemu+libssh") || uri.hasPrefix("libssh") || uri.contains("+libssh2") }

  /// - Parameter connectURI: what to open instead of `uri` (the same host, with the trust
  ///   material of the machine's configuration); the backend still answers to `uri`, and errors
  ///   never show the parameters.
  public static func connect(
    _ uri: String, via connectURI: String? = nil, keyring: Keyring, readOnly: Bool = false, timeout: Double = 15, imagePool: String? = nil,
    callTimeout: Double = 30, keepAlive: HostKeepAlive? = .standard
  ) throws(HostError) -> LibvirtHostBackend {
    // libvirt's client crashed (in glib's main loop, ~1 run in 4 here) when a libssh connection
    // ran beside libvirt's event loop, which keepalive needs: over libssh a host that freezes is
    // caught by the per-call deadline (`callTimeout`) instead. (`Connector` also turns keepalive
    // off for every host of a run that has a libssh one: the loop is process-wide.)
    let keepAlive = LibvirtHostBackend.usesLibssh(connectURI ?? uri) ? nil : keepAlive
    do {
      let connection = try openGuarded(uri, via: connectURI, readOnly: readOnly, timeout: timeout, keepAlive: keepAlive)
      let backend = LibvirtHostBackend(connection: connection, keyring: keyring, imagePool: imagePool, uri: uri)
      // Without keepalive: libvirt's client crashed in `virStreamFinish` when its keepalive
      // timer ran on the event-loop thread while a stream finished on another.
      backend.streamOpener = { try Connection.open(connectURI ?? uri, readOnly: readOnly, timeout: timeout, keepAlive: nil) }
      // Over libssh (see above) every extra connection is one more chance of that crash.
      let target = connectURI ?? uri
      if !LibvirtHostBackend.usesLibssh(target), backend.sharesItsWorld(across: target) {
        backend.laneOpener = { seconds in try Connection.open(target, readOnly: readOnly, timeout: seconds, keepAlive: nil) }
      }
      backend.callTimeout = callTimeout
      return backend
    } catch {
      throw HostError(uri: uri, operation: "cannot connect", libvirt: error)
    }
  }

  /// Opens the connection under `Deadline`, keyed by the host: a connect to a host whose earlier
  /// call is still stuck (a frozen daemon, a `watch` pass after pass) fails at once instead of
  /// leaving one more thread behind.
  static func openGuarded(_ uri: String, via connectURI: String?, readOnly: Bool, timeout: Double, keepAlive: HostKeepAlive?) throws(LibvirtError) -> Connection {
    let target = connectURI ?? uri
    let opened: Connection?
    do {
      opened = try Deadline.run(seconds: timeout, key: uri) { try Connection.openBlocking(target, readOnly: readOnly, keepAlive: keepAlive?.connectionValue) }
    } catch let error as LibvirtError {
      throw error
    } catch {
      throw LibvirtError(code: .timedOut, message: "\(error)")
    }
    guard let opened else { throw LibvirtError(code: .timedOut, message: "no answer from \(uri) within \(Int(timeout))s") }
    return opened
  }

  /// One bulk listing, then per domain one read: its persistent XML (plan: the ownership record
  /// and the shape `plan` converges), or for drift also the live XML of a running domain so live
  /// edits show too. Then the overlays in Drover's image pool (two calls per host).
  public func observe(detailed: Bool) throws -> ObservedHost {
    try guarded("reading its domains") { [self] in try self.observeNow(detailed: detailed) }
  }

  func observeNow(detailed: Bool) throws -> ObservedHost {
    calls.record("list")
    let listed: [(domain: Domain, state: DomainState)]
    do { listed = try connection.allDomainsWithState() } catch {
      throw HostError(uri: uri, operation: "cannot list domains", libvirt: error)
    }
    calls.recordListed(listed.count)
    let failure = Mutex<HostError?>(nil)
    let results = BlockingFanOut.map(listed.count, width: parallelism) { i -> ObservedDomain? in
      let (domain, state) = listed[i]
      do {
        return try observe(domain, state: state, live: detailed && state.isActive)
      } catch let error as LibvirtError where error.code == .noDomain {
        // Undefined between the listing and this read: it is gone, which is what we report.
      } catch {
        let wrapped = HostError(uri: uri, node: domain.name, operation: "cannot read the domain", libvirt: error as? LibvirtError)
        failure.withLock { $0 = $0 ?? wrapped }
      }
      return nil
    }
    if let first = failure.withLock({ $0 }) { throw first }
    let (volumes, poolFree) = try poolListing()
    var host = ObservedHost(
      uri: uri, domains: results.compactMap { $0 }, overlays: volumes.filter { OverlayName(volume: $0) != nil }, poolVolumes: volumes)
    var capabilities: String?
    if bootsNodes {
      calls.record("capabilities")
      do { capabilities = try connection.capabilities() } catch {
        throw HostError(uri: uri, operation: "cannot read the host's capabilities", libvirt: error)
      }
    }
    host.acceleration = capabilities.map(acceleration)
    host.capacity = try capacity(capabilities: capabilities, poolFree: poolFree)
    return host
  }

  /// Whether new domains here can use KVM (hosts that boot nodes: one more read beside the
  /// capabilities). libvirt refusing KVM domain capabilities outright means no KVM.
  func acceleration(_ capabilities: String) -> HostAcceleration {
    calls.record("domain-capabilities")
    return HostAcceleration.read(capabilities: capabilities, domainCapabilities: try? connection.domainCapabilities(virttype: "kvm"))
  }

  /// CPUs, memory and pool space: one call per host. On a host that boots nodes, the kernel's
  /// memory figures (all cells, with what is available now) and the CPUs its capabilities list
  /// already (read for the accelerator); `virNodeGetInfo`'s memory is the NUMA cells' sum, which
  /// measured 5 GiB of this machine's 24. On the test driver, its node info (made-up figures).
  func capacity(capabilities: String?, poolFree: UInt64?) throws -> HostCapacity {
    do {
      if let capabilities, let cpus = HostTopology.cpus(capabilities: capabilities) {
        calls.record("node-memory")
        do {
          let memory = try connection.nodeMemory()
          return HostCapacity(cpus: cpus, memoryBytes: memory.totalBytes, availableMemoryBytes: memory.availableBytes, poolFreeBytes: poolFree)
        } catch where error.code != .timedOut {
          // A driver without kernel memory figures, or with other fields: its node info
          // (counted: a second call).
        }
      }
      calls.record("node-info")
      let info = try connection.nodeInfo()
      return HostCapacity(cpus: info.cpus, memoryBytes: info.memoryBytes, poolFreeBytes: poolFree, simulated: !bootsNodes)
    } catch {
      throw HostError(uri: uri, operation: "cannot read the host's CPUs and memory", libvirt: error)
    }
  }

  func observe(_ domain: Domain, state: DomainState, live readLive: Bool) throws -> ObservedDomain {
    calls.record("config-xml")
    let config = try domain.xml(inactive: true)
    var live: String?
    if readLive {
      calls.record("live-xml")
      live = try domain.xml()
    }
    // The persistent record is what Drover wrote (setMetadata always writes the config).
    let name = domain.name, uuid = domain.uuid
    let document = XMLBytes(config)
    let reading = DomainXMLReader.ownership(in: document).map {
      OwnershipMetadata.read($0.element, tags: $0.tags, name: name, uuid: uuid, host: self.uri, key: keyring.key)
    }
    return ObservedDomain(
      name: name, uuid: uuid, state: state.description, isActive: state.isActive,
      ownership: reading?.ownership, metadataDigest: reading?.digest ?? "", trust: reading?.trust ?? .mismatch("no record"),
      actual: DomainXMLReader.shape(config: document, live: live.map(XMLBytes.init)))
  }

  /// Volumes of Drover's image pool named like node overlays.
  func overlayVolumes() throws -> [String] { try poolVolumeNames().filter { OverlayName(volume: $0) != nil } }

  /// Every volume of Drover's image pool, sorted (one listing).
  func poolVolumeNames() throws -> [String] { try poolListing().names }

  /// Every volume of Drover's image pool, sorted, and the pool's free bytes: its info (state and
  /// space in one call, where only its state was asked before) and one listing.
  func poolListing() throws -> (names: [String], freeBytes: UInt64?) {
    guard let imagePool else { return ([], nil) }
    do {
      calls.record("pool-lookup")
      guard let pool = try connection.storagePool(named: imagePool) else { return ([], nil) }
      let info = try pool.info()
      guard info.isActive else { return ([], nil) }
      calls.record("volume-list")
      return (try pool.volumeNames().sorted(), info.availableBytes)
    } catch {
      throw HostError(uri: uri, operation: "cannot list the volumes of storage pool \(imagePool)", libvirt: error)
    }
  }

  @discardableResult
  public func create(_ node: NodeDefinition) throws -> String {
    try guarded("creating \(node.name)") { [self] in try self.createNow(node) }
  }

  func createNow(_ node: NodeDefinition) throws -> String {
    guard let key = keyring.key, node.ownership.project == keyring.project else {
      removeOverlay(of: node)
      throw HostError(uri: uri, node: node.name, operation: "refusing to create", reason: "no key for project \(keyring.project) to seal its record with")
    }
    let xml = DomainXML.render(node, bootsNodes: bootsNodes, uuid: UUID().uuidString.lowercased(), key: key, host: uri)
    calls.record("define")
    let domain: Domain
    do { domain = try connection.defineDomain(xml: xml) } catch {
      removeOverlay(of: node)
      throw HostError(uri: uri, node: node.name, operation: "cannot define", libvirt: error)
    }
    do {
      calls.record("start")
      try domain.start()
    } catch {
      // Never leave a half-created node: remove the definition and the overlay we just made (the
      // overlay only once the definition is gone: a defined domain never loses its disk).
      calls.record("undefine")
      if (try? domain.undefine()) != nil { removeOverlay(of: node) }
      throw HostError(uri: uri, node: node.name, operation: "cannot start", libvirt: error)
    }
    return domain.uuid
  }

  func removeOverlay(of node: NodeDefinition) {
    guard let boot = node.boot else { return }
    try? deleteVolume(pool: boot.storagePool, name: boot.volume)
    if let seed = boot.seedVolume { try? deleteVolume(pool: boot.storagePool, name: seed) }
  }

  public func start(node: String, uuid: String) throws {
    try guarded("starting \(node)") { [self] in try self.startNow(node: node, uuid: uuid) }
  }

  func startNow(node: String, uuid: String) throws {
    let owned = try ownedNode(node, uuid: uuid)
    try activateDiskPool(of: owned.ownership, node: node)
    let domain = owned.domain
    calls.record("start")
    do { try domain.start() } catch {
      throw HostError(uri: uri, node: node, operation: "cannot start", libvirt: error)
    }
  }

  /// Starts the storage pool holding the node's disk when it is not active: after a host reboot a
  /// pool libvirtd did not autostart (defined by an older Drover) would make every start fail.
  func activateDiskPool(of o: NodeOwnership, node: String) throws {
    let poolName = o.diskPool
    guard !poolName.isEmpty else { return }
    calls.record("pool-state")
    let result: Result<Void, LibvirtError> = Result { () throws(LibvirtError) in
      guard let pool = try connection.storagePool(named: poolName), try !pool.isActive() else { return }
      try pool.start()
    }
    if case .failure(let error) = result {
      throw HostError(uri: uri, node: node, operation: "cannot start the storage pool \(poolName) of its disk", libvirt: error)
    }
  }

  public func resume(node: String, uuid: String) throws {
    try guarded("resuming \(node)") { [self] in try self.resumeNow(node: node, uuid: uuid) }
  }

  func resumeNow(node: String, uuid: String) throws {
    let domain = try ownedDomain(node, uuid: uuid)
    calls.record("resume")
    do { try domain.resume() } catch {
      throw HostError(uri: uri, node: node, operation: "cannot resume", libvirt: error)
    }
  }

  public func reset(node: String, uuid: String) throws {
    try guarded("resetting \(node)") { [self] in try self.resetNow(node: node, uuid: uuid) }
  }

  func resetNow(node: String, uuid: String) throws {
    let owned = try ownedNode(node, uuid: uuid)
    try activateDiskPool(of: owned.ownership, node: node)
    let domain = owned.domain
    calls.record("state")
    let active = (try? domain.state().isActive) ?? true
    do {
      if active {
        calls.record("destroy")
        try domain.destroy()
      }
      calls.record("start")
      try domain.start()
    } catch {
      throw HostError(uri: uri, node: node, operation: "cannot reset", libvirt: error)
    }
  }

  public func keep(node: String, uuid: String, as o: NodeOwnership, shutdownSeconds: Double) throws {
    // The guest's own shutdown has its time, and saving its memory writes a file of its size:
    // the deadline covers them (and a save that failed, then the shutdown) and the writes after.
    let saving = o.kept?.isHibernated == true ? Self.saveSeconds(memoryMiB: o.memoryMiB) : 0
    try guarded("keeping \(node)", timeout: callTimeout + shutdownSeconds + saving) { [self] in
      try self.keepNow(node: node, uuid: uuid, as: o, shutdownSeconds: shutdownSeconds)
    }
  }

  /// How long saving a guest's memory may take: a minute, and a second per 50 MiB on top (a
  /// slow disk writes that much).
  static func saveSeconds(memoryMiB: UInt64) -> Double { 60 + Double(min(memoryMiB, 1 << 30)) / 50 }

  /// Hibernated or shut off first, record last: a crash in between leaves a stopped serving
  /// node that the resumed step keeps again, never a kept record on a running domain. The
  /// record says how the node really waits: a guest whose memory could not be saved (a shared
  /// folder, a passed-through device) is shut off instead and recorded as stopped.
  func keepNow(node: String, uuid: String, as asked: NodeOwnership, shutdownSeconds: Double) throws {
    var o = asked
    let (domain, current, _, _) = try ownedNode(node, uuid: uuid)
    guard let key = keyring.key else {
      throw HostError(uri: uri, node: node, operation: "refusing to keep", reason: "no key for project \(keyring.project) to seal its record with")
    }
    guard Self.sameNode(o, current), o.kept != nil else {
      throw HostError(uri: uri, node: node, operation: "refusing to keep", reason: "the new record is not this node's kept record")
    }
    do {
      calls.record("state")
      var active = try domain.state().isActive
      var saved = false
      if o.kept?.isHibernated == true, active {
        calls.record("managedSave")
        saved = (try? domain.managedSave()) != nil
        // A save ends the guest's QEMU; one that failed left it running, to be shut down.
        if saved { active = false }
      } else if o.kept?.isHibernated == true {
        // A resumed keep: saved before the crash, or shut off by someone meanwhile.
        calls.record("hasManagedSave")
        saved = try domain.hasManagedSave()
      }
      if !saved { o.kept?.state = nil }
      if active {
        calls.record("shutdown")
        // A guest that cannot take the request (no ACPI handler) is powered off at the deadline.
        try? domain.shutdown()
        let deadline = Date().addingTimeInterval(shutdownSeconds)
        while Date() < deadline, (try? domain.state().isActive) ?? false { Thread.sleep(forTimeInterval: 0.2) }
        calls.record("state")
        if try domain.state().isActive {
          calls.record("destroy")
          try domain.destroy()
        }
      }
      calls.record("setAutostart")
      if try domain.autostart() { try domain.setAutostart(false) }
      calls.record("setMetadata")
      try setRecord(o, on: domain, key: key, live: false)
    } catch {
      throw HostError(uri: uri, node: node, operation: "cannot keep", libvirt: error)
    }
  }

  public func revive(node: String, uuid: String, as o: NodeOwnership) throws {
    // Restoring saved memory reads a file of the guest's size.
    try guarded("starting kept node \(node)", timeout: callTimeout + Self.saveSeconds(memoryMiB: o.memoryMiB)) { [self] in
      try self.reviveNow(node: node, uuid: uuid, as: o)
    }
  }

  /// Start first, record last: a crash in between leaves a running kept node the resumed step
  /// revives again (the start is skipped), never a serving record on a stopped domain. A
  /// hibernated node's start resumes its saved memory (libvirt's managed save); its live XML is
  /// then the one saved with it (the serving record it had), and the persistent record the kept
  /// one until the write here.
  func reviveNow(node: String, uuid: String, as o: NodeOwnership) throws {
    let (domain, current, _, _) = try ownedNode(node, uuid: uuid)
    guard let key = keyring.key else {
      throw HostError(uri: uri, node: node, operation: "refusing to start", reason: "no key for project \(keyring.project) to seal its record with")
    }
    guard Self.sameNode(o, current), o.kept == nil else {
      throw HostError(uri: uri, node: node, operation: "refusing to start", reason: "the new record is not this node's serving record")
    }
    try activateDiskPool(of: current, node: node)
    do {
      calls.record("state")
      var active = try domain.state().isActive
      if !active {
        calls.record("start")
        try domain.start()
        active = true
      }
      calls.record("setMetadata")
      try setRecord(o, on: domain, key: key, live: active)
    } catch {
      throw HostError(uri: uri, node: node, operation: "cannot start", libvirt: error)
    }
  }

  /// vCPU and memory through libvirt's config setters (never a redefinition from a template, so
  /// the disk, kernel and console stay exactly as they are), a restart when asked, then the
  /// ownership record. Raising a maximum goes before the current value, lowering after.
  public func update(node: String, uuid: String, to o: NodeOwnership, restart: Bool) throws {
    try guarded("updating \(node)") { [self] in try self.updateNow(node: node, uuid: uuid, to: o, restart: restart) }
  }

  func updateNow(node: String, uuid: String, to o: NodeOwnership, restart: Bool) throws {
    // A record from before keyed records may be sealed here (that is how it gets its seal), once
    // its name and UUID are checked; the planner plans nothing else for such a node.
    let (domain, current, shape, trust) = try ownedNode(node, uuid: uuid, acceptLegacy: true)
    guard let key = keyring.key else {
      throw HostError(uri: uri, node: node, operation: "refusing to update", reason: "no key for project \(keyring.project) to seal its record with")
    }
    guard Self.sameNode(o, current) else {
      throw HostError(uri: uri, node: node, operation: "refusing to update", reason: "the new record is not this node's (\(o.project)/\(o.node))")
    }
    // Sealing a record an older Drover wrote writes the record and nothing else.
    let sealOnly = trust == .legacy
    if sealOnly && o != current {
      throw HostError(uri: uri, node: node, operation: "refusing to update", reason: "its record was written before records were keyed; only sealing it as it is is allowed")
    }
    do {
      if !sealOnly, shape.vcpu != o.vcpu || shape.maxVcpu != o.vcpu {
        calls.record("setVcpus")
        if o.vcpu > shape.maxVcpu {
          try domain.setVcpus(o.vcpu, config: true, live: false, maximum: true)
          try domain.setVcpus(o.vcpu, config: true, live: false)
        } else {
          try domain.setVcpus(o.vcpu, config: true, live: false)
          try domain.setVcpus(o.vcpu, config: true, live: false, maximum: true)
        }
      }
      let kib = o.memoryMiB * 1024
      if !sealOnly, shape.memoryKiB != kib {
        calls.record("setMemory")
        try domain.setMemory(kibibytes: kib, config: true, live: false, maximum: true)
        try domain.setMemory(kibibytes: kib, config: true, live: false)
      }
      calls.record("state")
      let active = try domain.state().isActive
      if restart && active && !sealOnly {
        calls.record("destroy")
        try domain.destroy()
        calls.record("start")
        try domain.start()
      }
      // The record last: if anything above fails or the process dies, the old record makes the
      // next plan do the whole update (restart included) again.
      calls.record("setMetadata")
      try setRecord(o, on: domain, key: key, live: active)
    } catch {
      throw HostError(uri: uri, node: node, operation: "cannot update", libvirt: error)
    }
  }

  /// Writes `o` as the domain's ownership record, sealed with `key` for this very domain and
  /// host entry (the one way every write of a record goes: update, adopt, keep, revive).
  func setRecord(_ o: NodeOwnership, on domain: Domain, key: RecordKey, live: Bool) throws(LibvirtError) {
    try domain.setMetadata(
      OwnershipMetadata.render(o, key: key, binding: .init(uuid: domain.uuid, host: uri), forSetMetadata: true), key: OwnershipMetadata.prefix,
      namespace: OwnershipMetadata.namespace, live: live)
  }

  /// Whether a new record is one for the node `current` records (same project, pool, index, name).
  static func sameNode(_ o: NodeOwnership, _ current: NodeOwnership) -> Bool {
    o.node == current.node && o.pool == current.pool && o.index == current.index && o.project == current.project
  }

  /// Stops and undefines an owned node, then deletes its overlay (no orphan volumes).
  ///
  /// Deletes derive, never trust: the only volume ever deleted is the overlay Drover names for
  /// this very node (`OverlayName` of its project, pool, index and generation, or the older
  /// `node-<name>-g<n>` spelling), in Drover's own image pool, and only when the domain really
  /// uses it. A record that names some other volume never gets it deleted.
  public func delete(node: String, uuid: String) throws {
    try guarded("deleting \(node)") { [self] in try self.deleteNow(node: node, uuid: uuid) }
  }

  func deleteNow(node: String, uuid: String) throws {
    let (domain, ownership, shape, _) = try ownedNode(node, uuid: uuid)
    let overlay = imagePool.flatMap { pool in Self.derivedOverlays(of: ownership, in: pool).first { shape.disks.contains("\(pool)/\($0)") } }
    do {
      if try domain.state().isActive {
        calls.record("destroy")
        try domain.destroy()
      }
      calls.record("undefine")
      try domain.undefine()
    } catch {
      if error.code != .noDomain { throw HostError(uri: uri, node: node, operation: "cannot delete", libvirt: error) }
    }
    CrashPoint.reached("domain-undefined")
    if let overlay, let imagePool { try deleteVolume(pool: imagePool, name: overlay) }
    // Its cloud-init seed: the name derived from the verified record, and only when it is a disk
    // of this domain.
    let seed = OverlayName(of: ownership, kind: .seed).volume
    if let imagePool, shape.disks.contains("\(imagePool)/\(seed)") { try deleteVolume(pool: imagePool, name: seed) }
    // A host that keeps consoles in its pool: the node's log goes with it (the name is derived
    // from the verified node's name; best effort, a log never fails a delete).
    if consoleOnHost, let imagePool { try? deleteVolume(pool: imagePool, name: PoolVolumeNames.console(of: node)) }
  }

  /// The volume names Drover gives the disk of the node `o` records: today's, then the spelling
  /// of Drover before overlay names carried the project.
  static func derivedOverlays(of o: NodeOwnership, in pool: String) -> [String] {
    [OverlayName(of: o).volume, "node-\(o.node)-g\(o.generation).qcow2"]
  }

  public func adopt(node: String, uuid: String, as o: NodeOwnership) throws {
    try guarded("adopting \(node)") { [self] in try self.adoptNow(node: node, uuid: uuid, as: o) }
  }

  func adoptNow(node: String, uuid: String, as o: NodeOwnership) throws {
    guard let key = keyring.key else {
      throw HostError(uri: uri, node: node, operation: "refusing to adopt", reason: "no key for project \(keyring.project) to seal its record with")
    }
    calls.record("lookup")
    let domain: Domain
    do {
      guard let found = try connection.domain(named: node) else {
        throw HostError(uri: uri, node: node, operation: "refusing to adopt", reason: "the domain no longer exists")
      }
      domain = found
    } catch let error as LibvirtError {
      throw HostError(uri: uri, node: node, operation: "cannot look up", libvirt: error)
    }
    calls.record("config-xml")
    let xml = try domain.xml(inactive: true)
    guard domain.uuid.lowercased() == uuid.lowercased(), o.node == node, o.project == keyring.project,
      let current = DomainXMLReader.ownershipElement(xml).flatMap(OwnershipMetadata.parse), current.project == keyring.project
    else {
      throw HostError(uri: uri, node: node, operation: "refusing to adopt", reason: "the domain is not the one decided (its UUID or record changed); run adopt again")
    }
    calls.record("state")
    let active = try domain.state().isActive
    calls.record("setMetadata")
    do {
      // A person's decision that this is the node: the keys it had are not trusted over what it
      // shows now (a node rebuilt outside Drover has new ones); they are learned again. Dropped
      // first, so a failure between the two writes leaves no old keys beside a new record.
      try domain.setMetadata(nil, key: HostKeysMetadata.prefix, namespace: HostKeysMetadata.namespace, live: active)
      calls.record("setMetadata")
      try setRecord(o, on: domain, key: key, live: active)
    } catch {
      throw HostError(uri: uri, node: node, operation: "cannot adopt", libvirt: error)
    }
  }

  /// Deletes an overlay of Drover's image pool that no domain on the host uses (checked again
  /// here by reading every domain's disks: the plan may be minutes old).
  public func removeOrphanOverlay(volume: String) throws {
    try guarded("removing overlay \(volume)") { [self] in try self.removeOrphanOverlayNow(volume: volume) }
  }

  func removeOrphanOverlayNow(volume: String) throws {
    guard let imagePool, OverlayName(volume: volume) != nil else {
      throw HostError(uri: uri, operation: "refusing to delete volume \(volume)", reason: "it is not named like a Drover overlay")
    }
    let disk = "\(imagePool)/\(volume)"
    if let user = try domainUsing(volume: volume, disk: disk) {
      throw HostError(uri: uri, operation: "refusing to delete volume \(disk)", reason: "domain \(user) uses it")
    }
    try deleteVolume(pool: imagePool, name: volume)
  }

  /// The name of a domain whose config or ownership record uses the volume, if any.
  func domainUsing(volume: String, disk: String) throws -> String? {
    let domains: [Domain]
    do {
      calls.record("list")
      domains = try connection.allDomains()
    } catch {
      throw HostError(uri: uri, operation: "cannot check the users of volume \(disk)", libvirt: error)
    }
    for domain in domains {
      // Persistent config and, for a running domain, the live one (a disk attached with --live).
      for inactive in [true, false] {
        calls.record(inactive ? "config-xml" : "live-xml")
        let xml: String
        do { xml = try domain.xml(inactive: inactive) } catch {
          if error.code == .noDomain { break }  // gone since the listing
          throw HostError(uri: uri, node: domain.name, operation: "cannot check the users of volume \(disk)", libvirt: error)
        }
        let shape = DomainXMLReader.shape(config: xml, live: nil)
        let recorded = DomainXMLReader.ownershipElement(xml).flatMap(OwnershipMetadata.parse)?.disk
        if recorded == disk || shape.disks.contains(where: { $0 == disk || $0.hasSuffix("/" + volume) }) { return domain.name }
      }
    }
    return nil
  }

  /// Runs one operation within `callTimeout`. A host that did not answer is not asked again:
  /// every later operation on it fails at once, naming the one that stalled.
  /// - Parameter timeout: seconds for this operation when it is longer than one call by nature
  ///   (a transfer whose time grows with its size); `callTimeout` otherwise.
  func guarded<T: Sendable>(_ what: String, timeout: Double? = nil, _ body: @escaping @Sendable () throws -> T) throws -> T {
    if let earlier = stall.value.withLock({ $0 }) {
      throw HostError(uri: uri, operation: what, reason: "the host stopped answering while \(earlier); nothing more is done on it")
    }
    let limit = timeout ?? callTimeout
    if let watch {
      // A lane: inline, its worker's waiter watching the deadline.
      do { return try watch.run(seconds: limit, key: uri, what: what, body) } catch let stuck as Deadline.StillStuck {
        stall.value.withLock { $0 = $0 ?? what }
        throw HostError(uri: uri, operation: what, reason: "\(stuck) (an earlier call to this host); nothing more is done on it")
      } catch let late as CallWatch.Abandoned {
        stall.value.withLock { $0 = $0 ?? what }
        throw HostError(uri: uri, operation: what, reason: "\(late)\(timeout == nil ? " (--call-timeout)" : "")")
      }
    }
    let answer: T?
    do { answer = try Deadline.run(seconds: limit, key: uri, body) } catch let stuck as Deadline.StillStuck {
      stall.value.withLock { $0 = $0 ?? what }
      throw HostError(uri: uri, operation: what, reason: "\(stuck) (an earlier call to this host); nothing more is done on it")
    }
    guard let result = answer else {
      stall.value.withLock { $0 = $0 ?? what }
      throw HostError(uri: uri, operation: what, reason: "no answer within \(Int(limit)) s\(timeout == nil ? " (--call-timeout)" : "")")
    }
    return result
  }

  public func isRunning(node: String) -> Bool? {
    let answer = try? guarded("reading the state of \(node)") { [self] () -> Bool? in
      calls.record("state")
      guard let domain = try? connection.domain(named: node), let state = try? domain.state() else { return nil }
      return state.isActive
    }
    return answer ?? nil
  }

  /// Looks the domain up again and proves it is still the owned node the plan meant.
  ///
  /// Why here and not only in the planner: the plan may be minutes old; a foreign domain may have
  /// taken the name since. This is the last check before any destructive call.
  func ownedDomain(_ name: String, uuid: String) throws -> Domain { try ownedNode(name, uuid: uuid).domain }

  /// Why a record read just now cannot be acted on, or nil when it can.
  func refusal(_ trust: RecordTrust, acceptLegacy: Bool) -> String? {
    switch trust {
    case .verified: return nil
    case .legacy: return acceptLegacy ? nil : "its record was written before records were keyed; apply seals it first"
    case .unchecked(let id): return "its record is sealed with key \(id), which this machine does not hold"
    case .mismatch(let why): return why
    }
  }

  /// The domain, its ownership record and its persistent shape, from one read of its persistent
  /// XML (the record Drover writes is always in the config).
  func ownedNode(_ name: String, uuid: String, acceptLegacy: Bool = false) throws -> (
    domain: Domain, ownership: NodeOwnership, shape: DomainShape, trust: RecordTrust
  ) {
    calls.record("lookup")
    let found: Domain?
    do { found = try connection.domain(named: name) } catch {
      throw HostError(uri: uri, node: name, operation: "cannot look up", libvirt: error)
    }
    guard let domain = found else {
      throw HostError(uri: uri, node: name, operation: "refusing to act", reason: "the domain no longer exists")
    }
    calls.record("config-xml")
    let xml: String
    do { xml = try domain.xml(inactive: true) } catch {
      throw HostError(uri: uri, node: name, operation: "cannot read the domain", libvirt: error)
    }
    guard let element = DomainXMLReader.ownershipElement(xml) else {
      throw HostError(uri: uri, node: name, operation: "refusing to act", reason: "the domain is not owned by Drover")
    }
    let reading = OwnershipMetadata.read(element, name: name, uuid: domain.uuid, host: uri, key: keyring.key)
    guard let ownership = reading.ownership, ownership.node == name else {
      throw HostError(uri: uri, node: name, operation: "refusing to act", reason: "the domain is not owned by Drover")
    }
    guard ownership.project == keyring.project else {
      throw HostError(uri: uri, node: name, operation: "refusing to act", reason: "the domain belongs to Drover project '\(ownership.project)', not '\(keyring.project)'")
    }
    guard domain.uuid.lowercased() == uuid.lowercased() else {
      throw HostError(
        uri: uri, node: name, operation: "refusing to act",
        reason: "the domain's UUID is \(domain.uuid), not \(uuid) as planned; run plan again")
    }
    if let why = refusal(reading.trust, acceptLegacy: acceptLegacy) {
      throw HostError(uri: uri, node: name, operation: "refusing to act", reason: why)
    }
    return (domain, ownership, DomainXMLReader.shape(config: xml, live: nil), reading.trust)
  }
}

extension LibvirtHostBackend: ConsoleReading {
  public var readsConsoles: Bool { consoleOnHost }

  public func console(of node: String) -> [UInt8]? {
    guard consoleOnHost, let pool = imagePool else { return nil }
    return (try? readHead(pool: pool, name: PoolVolumeNames.console(of: node), maxBytes: ConsoleBound.head)) ?? nil
  }

  public func consoleTail(of node: String, maxBytes: UInt64) -> (bytes: [UInt8], base: UInt64)? {
    guard consoleOnHost, let pool = imagePool else { return nil }
    return (try? readTail(pool: pool, name: PoolVolumeNames.console(of: node), maxBytes: maxBytes)) ?? nil
  }
}

extension LibvirtHostBackend: GuestAgentPinging {
  /// One call (`virDomainGetTime`, answered by the agent; libvirt's guest-sync gives up on a
  /// silent agent after 5 s). A guest that hangs must not make the host look stalled: this
  /// deadline is its own, not the host's call guard. The guest's agent settings are not touched.
  public func pingAgent(node: String) -> String? {
    // At most one ping per node in flight: a ping abandoned at its deadline (a libvirtd that
    // froze) is not joined by another each pass.
    guard agentPings.withLock({ $0.insert(node).inserted }) else { return "the previous ping of its guest agent is still unanswered" }
    let connection = self.connection
    calls.record("agent-ping")
    let answer = try? Deadline.run(seconds: 10) { [self] () -> String? in
      defer { _ = agentPings.withLock { $0.remove(node) } }
      guard let domain = try? connection.domain(named: node) else { return "the domain is gone" }
      do {
        _ = try domain.guestTime()
        return nil
      } catch {
        return (error as? LibvirtError)?.message ?? "\(error)"
      }
    }
    guard let answer else { return "the guest agent did not answer within 10 s" }
    return answer
  }
}

extension LibvirtHostBackend: AddressResolving {
  public func address(of node: String) -> String? {
    guard let domain = try? connection.domain(named: node) else { return nil }
    calls.record("addresses")
    let leases = (try? domain.ipv4Addresses()) ?? []
    // One lease is the common case: no more calls. Several: the guest agent says which it holds.
    guard leases.count > 1, (try? domain.xml(inactive: false))?.contains("org.qemu.guest_agent.0") == true else { return leases.first }
    calls.record("addresses")
    let held = ((try? domain.ipv4Addresses(from: .agent)) ?? []).compactMap { StaticAddresses.parse($0).map(StaticAddresses.text) }
    return NodeAddressChoice.pick(leases: leases, agent: held)
  }

  /// Leases first, then the guest agent where the domain has its channel (an image with
  /// qemu-guest-agent): an address the agent reports that no lease has is still shown.
  public func addresses(of node: String) -> [(address: String, source: String)] {
    guard let domain = try? connection.domain(named: node) else { return [] }
    calls.record("addresses")
    // The agent's answers are the guest's words: only what parses as an address is shown.
    func addresses(_ source: Domain.AddressSource) -> [String] {
      ((try? domain.ipv4Addresses(from: source)) ?? []).compactMap { StaticAddresses.parse($0).map(StaticAddresses.text) }
    }
    var found = addresses(.lease).map { (address: $0, source: "lease") }
    if (try? domain.xml(inactive: false))?.contains("org.qemu.guest_agent.0") == true {
      calls.record("addresses")
      for address in addresses(.agent) where !found.contains(where: { $0.address == address }) {
        found.append((address, "agent"))
      }
    }
    return found
  }
}

/// The first operation on a host that got no answer in time, shared by a backend and its lanes.
final class StallMark: Sendable {
  let value = Mutex<String?>(nil)
}
