internal import CLibvirt
import Foundation

/// An open libvirt connection, closed when the last reference goes away.
///
/// libvirt connections are thread-safe ("the connection object can be shared between threads"),
/// so one connection serves several concurrent calls; the daemon processes up to
/// `max_client_requests` (5) of them at once.
public final class Connection: @unchecked Sendable {
  let pointer: OpaquePointer
  public let uri: String
  public let isReadOnly: Bool

  private init(pointer: OpaquePointer, uri: String, readOnly: Bool) {
    self.pointer = pointer
    self.uri = uri
    self.isReadOnly = readOnly
  }

  deinit { virConnectClose(pointer) }

  /// The driver behind the connection, as libvirt names it (`QEMU`, `Test`, …).
  /// The corresponding C function is `virConnectGetType`.
  public func driverType() throws(LibvirtError) -> String {
    guard let type = virConnectGetType(pointer) else { throw LibvirtError.last(fallback: "reading the driver type of \(uri)") }
    return String(cString: type)
  }

  /// The host's capabilities XML (its CPU and its features among them).
  /// The corresponding C function is `virConnectGetCapabilities`.
  public func capabilities() throws(LibvirtError) -> String {
    guard let xml = virConnectGetCapabilities(pointer) else { throw LibvirtError.last(fallback: "reading the capabilities of \(uri)") }
    defer { free(xml) }
    return String(cString: xml)
  }

  /// What a domain of `virttype` (`kvm`, `qemu`) could be on this host, as XML.
  /// The corresponding C function is `virConnectGetDomainCapabilities`.
  public func domainCapabilities(virttype: String, arch: String = "x86_64") throws(LibvirtError) -> String {
    guard let xml = virConnectGetDomainCapabilities(pointer, nil, arch, nil, virttype, 0) else {
      throw LibvirtError.last(fallback: "reading the \(virttype) domain capabilities of \(uri)")
    }
    defer { free(xml) }
    return String(cString: xml)
  }

  /// libvirt's keepalive: a ping after `interval` seconds without traffic; the connection is
  /// closed (and every call blocked on it fails) after `count` unanswered pings.
  public struct KeepAlive: Sendable, Equatable {
    public var interval: Int32
    public var count: UInt32
    public init(interval: Int32, count: UInt32) {
      self.interval = interval
      self.count = count
    }
    /// virsh's default, and Drover's: a daemon that stops answering is noticed within ~20 s.
    public static let standard = KeepAlive(interval: 5, count: 3)
  }

  /// Opens `uri`, giving up after `timeout` seconds.
  ///
  /// Why a deadline: opening a remote URI to a black-holed host can block for minutes in TCP/SSH.
  /// The open runs on a helper thread; if it has not answered in time this throws `.timedOut`
  /// (a late connection is closed by the helper).
  ///
  /// With `keepAlive`, libvirt's event loop runs (see `Libvirt` for its cost) and the connection
  /// pings the daemon, so a daemon that stops answering — frozen, or behind a dead link — fails
  /// the call blocked on it instead of leaving it waiting. Without it, a local daemon that dies
  /// still closes its socket; one that freezes is caught only by the caller's own deadline.
  ///
  /// The corresponding C functions are `virConnectOpen`, `virConnectOpenReadOnly` and
  /// `virConnectSetKeepAlive`.
  public static func open(_ uri: String, readOnly: Bool = false, timeout: Double = 15, keepAlive: KeepAlive? = .standard) throws(LibvirtError) -> Connection {
    Libvirt.initialize()
    if keepAlive != nil { Libvirt.startEventLoop() }
    final class Box: @unchecked Sendable {
      let lock = NSLock()
      var result: Result<OpaquePointer, LibvirtError>?
      var abandoned = false
    }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
      let result = openPointer(uri, readOnly: readOnly)
      box.lock.lock()
      if box.abandoned, case .success(let late) = result {
        virConnectClose(late)
      } else {
        box.result = result
      }
      box.lock.unlock()
      done.signal()
    }
    thread.start()
    if done.wait(timeout: .now() + timeout) == .timedOut {
      box.lock.lock()
      box.abandoned = true
      let finished = box.result
      box.lock.unlock()
      if finished == nil {
        throw LibvirtError(code: .timedOut, message: "no answer from \(uri) within \(Int(timeout))s")
      }
    }
    box.lock.lock()
    let result = box.result!
    box.lock.unlock()
    return connection(try result.get(), uri: uri, readOnly: readOnly, keepAlive: keepAlive)
  }

  /// Opens `uri` on the calling thread, with no deadline of its own: for a caller that runs it
  /// under its own (one that keeps count of the calls it abandons).
  public static func openBlocking(_ uri: String, readOnly: Bool = false, keepAlive: KeepAlive? = .standard) throws(LibvirtError) -> Connection {
    Libvirt.initialize()
    if keepAlive != nil { Libvirt.startEventLoop() }
    return connection(try openPointer(uri, readOnly: readOnly).get(), uri: uri, readOnly: readOnly, keepAlive: keepAlive)
  }

  static func openPointer(_ uri: String, readOnly: Bool) -> Result<OpaquePointer, LibvirtError> {
    let p = readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri)
    return p.map { .success($0) } ?? .failure(LibvirtError.last(fallback: "cannot connect to \(uri)"))
  }

  static func connection(_ pointer: OpaquePointer, uri: String, readOnly: Bool, keepAlive: KeepAlive?) -> Connection {
    if let keepAlive, keepAlive.interval > 0 {
      // Fails only for drivers without keepalive (the in-process test driver): nothing to ping.
      _ = virConnectSetKeepAlive(pointer, keepAlive.interval, keepAlive.count)
    }
    return Connection(pointer: pointer, uri: uri, readOnly: readOnly)
  }

  /// Whether `uri` names a daemon on another machine (a host part, as in `qemu+ssh://h2/system`
  /// or `qemu://h2/system`), as opposed to a local socket (`qemu:///system`, `test+unix:///default`)
  /// or an in-process driver (`test:///default`).
  public static func reachesAnotherMachine(_ uri: String) -> Bool {
    guard let separator = uri.range(of: "://") else { return false }
    let rest = uri[separator.upperBound...]
    let authority = rest.prefix { $0 != "/" && $0 != "?" }
    let host = authority.split(separator: "@").last.map { $0.split(separator: ":").first ?? "" } ?? ""
    return !host.isEmpty
  }

  /// Every domain with its state, from one bulk call.
  ///
  /// The corresponding C function is `virConnectGetAllDomainStats` with `VIR_DOMAIN_STATS_STATE`;
  /// the returned records are freed with `virDomainStatsRecordListFree` (each `Domain` here keeps
  /// its own reference, taken with `virDomainRef`).
  public func allDomainsWithState() throws(LibvirtError) -> [(domain: Domain, state: DomainState)] {
    var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>?
    let count = virConnectGetAllDomainStats(pointer, VIR_DOMAIN_STATS_STATE.rawValue, &records, 0)
    try check(count, "listing domains on \(uri)")
    guard let records else { return [] }
    defer { virDomainStatsRecordListFree(records) }
    var result: [(Domain, DomainState)] = []
    result.reserveCapacity(Int(count))
    for i in 0..<Int(count) {
      guard let record = records[i], let dom = record.pointee.dom else { continue }
      var state: Int32 = 0
      _ = virTypedParamsGetInt(record.pointee.params, record.pointee.nparams, "state.state", &state)
      virDomainRef(dom)
      result.append((Domain(pointer: dom, connection: self), DomainState(rawValue: state)))
    }
    return result
  }

  /// Every domain, active or not. The corresponding C function is `virConnectListAllDomains`.
  public func allDomains() throws(LibvirtError) -> [Domain] {
    var list: UnsafeMutablePointer<virDomainPtr?>?
    let count = virConnectListAllDomains(pointer, &list, 0)
    try check(count, "listing domains on \(uri)")
    guard let list else { return [] }
    defer { free(list) }
    return (0..<Int(count)).compactMap { i in list[i].map { Domain(pointer: $0, connection: self) } }
  }

  /// The domain named `name`, or nil when there is none (`VIR_ERR_NO_DOMAIN` only; any other
  /// error is thrown). The corresponding C function is `virDomainLookupByName`.
  public func domain(named name: String) throws(LibvirtError) -> Domain? {
    guard let p = virDomainLookupByName(pointer, name) else {
      let error = LibvirtError.last(fallback: "looking up domain \(name)")
      if error.code == .noDomain { return nil }
      throw error
    }
    return Domain(pointer: p, connection: self)
  }

  /// Defines (or redefines, when the XML carries an existing UUID) a persistent domain.
  /// The corresponding C function is `virDomainDefineXML`.
  public func defineDomain(xml: String) throws(LibvirtError) -> Domain {
    guard let p = virDomainDefineXML(pointer, xml) else { throw LibvirtError.last(fallback: "defining domain") }
    return Domain(pointer: p, connection: self)
  }
}
