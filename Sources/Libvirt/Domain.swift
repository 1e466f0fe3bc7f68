internal import CLibvirt
import Foundation

/// A libvirt domain state (`virDomainState`).
public struct DomainState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
  public var rawValue: Int32
  public init(rawValue: Int32) { self.rawValue = rawValue }

  public static let noState = DomainState(rawValue: 0)
  public static let running = DomainState(rawValue: 1)
  public static let blocked = DomainState(rawValue: 2)
  public static let paused = DomainState(rawValue: 3)
  public static let shutdown = DomainState(rawValue: 4)
  public static let shutoff = DomainState(rawValue: 5)
  public static let crashed = DomainState(rawValue: 6)
  public static let suspended = DomainState(rawValue: 7)

  /// True while the domain has a running hypervisor process (running, blocked, paused…).
  public var isActive: Bool { self != .shutoff && self != .noState && self != .crashed }

  public var description: String {
    ["nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "suspended"][
      Int(max(0, min(7, rawValue)))]
  }
}

/// A handle to one domain; keeps its connection alive and is freed deterministically.
public final class Domain: @unchecked Sendable {
  let pointer: OpaquePointer
  public let connection: Connection

  init(pointer: OpaquePointer, connection: Connection) {
    self.pointer = pointer
    self.connection = connection
  }

  deinit { virDomainFree(pointer) }

  /// Read from the handle, no round trip. The corresponding C function is `virDomainGetName`.
  public var name: String { virDomainGetName(pointer).map { String(cString: $0) } ?? "" }

  /// Read from the handle, no round trip. The corresponding C function is `virDomainGetUUID`:
  /// the raw bytes, formatted here — `virDomainGetUUIDString` formats through `g_snprintf`,
  /// which was 3% of a 1,000-node `plan`'s CPU.
  public var uuid: String {
    var raw = [UInt8](repeating: 0, count: 16)
    guard virDomainGetUUID(pointer, &raw) == 0 else { return "" }
    return Self.uuidText(raw)
  }

  /// 16 bytes as libvirt's UUID text (lowercase, 8-4-4-4-12).
  static func uuidText(_ raw: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(36)
    for (i, byte) in raw.prefix(16).enumerated() {
      if i == 4 || i == 6 || i == 8 || i == 10 { text.append(UInt8(ascii: "-")) }
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
  }

  /// The running instance's id (changes at every start), or nil when it is not running.
  /// The corresponding C function is `virDomainGetID`.
  public var id: UInt32? {
    let value = virDomainGetID(pointer)
    return value == UInt32.max ? nil : value
  }

  /// The corresponding C function is `virDomainGetState`.
  public func state() throws(LibvirtError) -> DomainState {
    var state: Int32 = 0
    var reason: Int32 = 0
    try check(virDomainGetState(pointer, &state, &reason, 0), "reading state of \(name)")
    return DomainState(rawValue: state)
  }

  /// The guest's clock through its QEMU guest agent: the agent's answer is the point (a live
  /// guest whose agent runs), the time is not. Fails when no agent answers.
  /// The corresponding C function is `virDomainGetTime`.
  public func guestTime() throws(LibvirtError) -> Int64 {
    var seconds: Int64 = 0
    var nanoseconds: UInt32 = 0
    try check(virDomainGetTime(pointer, &seconds, &nanoseconds, 0), "asking the guest agent of \(name) for its time")
    return seconds
  }

  /// The domain's XML; `inactive` gives the persistent config rather than the live one.
  /// The corresponding C function is `virDomainGetXMLDesc`; the string is the caller's to free.
  public func xml(inactive: Bool = false) throws(LibvirtError) -> String {
    let flags: UInt32 = inactive ? VIR_DOMAIN_XML_INACTIVE.rawValue : 0
    guard let text = takeString(virDomainGetXMLDesc(pointer, flags)) else {
      throw LibvirtError.last(fallback: "reading XML of \(name)")
    }
    return text
  }

  /// The custom `<metadata>` element in namespace `uri`, or nil when it has none.
  ///
  /// The corresponding C function is `virDomainGetMetadata` with `VIR_DOMAIN_METADATA_ELEMENT`;
  /// `VIR_ERR_NO_DOMAIN_METADATA` means "none" and anything else is thrown.
  public func metadata(namespace uri: String, inactive: Bool = false) throws(LibvirtError) -> String? {
    let flags: UInt32 = inactive ? VIR_DOMAIN_AFFECT_CONFIG.rawValue : 0
    guard let text = takeString(virDomainGetMetadata(pointer, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), uri, flags))
    else {
      let error = LibvirtError.last(fallback: "reading metadata of \(name)")
      if error.code == .noDomainMetadata { return nil }
      throw error
    }
    return text
  }

  /// Sets (or, with `xml == nil`, removes) the custom metadata element in namespace `uri`, in the
  /// persistent config and, for a running domain, the live one.
  /// The corresponding C function is `virDomainSetMetadata`.
  public func setMetadata(_ xml: String?, key: String, namespace uri: String, live: Bool) throws(LibvirtError) {
    var flags = VIR_DOMAIN_AFFECT_CONFIG.rawValue
    if live { flags |= VIR_DOMAIN_AFFECT_LIVE.rawValue }
    try check(
      virDomainSetMetadata(pointer, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), xml, xml == nil ? nil : key, uri, flags),
      "setting metadata of \(name)")
  }

  /// Where libvirt learns a domain's addresses.
  public enum AddressSource: Sendable {
    /// The DHCP leases of libvirt's own networks.
    case lease
    /// The QEMU guest agent inside the domain (fails at once when no agent is connected).
    case agent
  }

  /// IPv4 addresses of the domain's interfaces (loopback left out).
  /// The corresponding C function is `virDomainInterfaceAddresses`
  /// (`VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE` or `_AGENT`); the result is freed with `virDomainInterfaceFree`.
  public func ipv4Addresses(from source: AddressSource = .lease) throws(LibvirtError) -> [String] {
    var ifaces: UnsafeMutablePointer<virDomainInterfacePtr?>?
    let flag = source == .lease ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE : VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
    let n = virDomainInterfaceAddresses(pointer, &ifaces, UInt32(flag.rawValue), 0)
    try check(n, "reading addresses of \(name)")
    guard let ifaces else { return [] }
    defer {
      for i in 0..<Int(n) { if let iface = ifaces[i] { virDomainInterfaceFree(iface) } }
      free(ifaces)
    }
    var result: [String] = []
    for i in 0..<Int(n) {
      guard let iface = ifaces[i] else { continue }
      for j in 0..<Int(iface.pointee.naddrs) {
        let a = iface.pointee.addrs[j]
        if a.type == Int32(VIR_IP_ADDR_TYPE_IPV4.rawValue), let text = a.addr {
          let address = String(cString: text)
          if !address.hasPrefix("127.") { result.append(address) }
        }
      }
    }
    return result
  }

  /// Starts a defined domain. The corresponding C function is `virDomainCreateWithFlags` (flags 0, the
  /// same start): over libvirt's RPC, `virDomainCreate` is two round trips (the start, then a
  /// lookup by UUID for the new id: the old call's reply has none), this is one — a quarter of
  /// the calls of creating a node.
  public func start() throws(LibvirtError) { try check(virDomainCreateWithFlags(pointer, 0), "starting \(name)") }

  /// Saves the guest's memory to a file libvirt manages and ends its QEMU; the next `start`
  /// resumes it from there. The corresponding C function is `virDomainManagedSave`.
  public func managedSave() throws(LibvirtError) { try check(virDomainManagedSave(pointer, 0), "saving the memory of \(name)") }

  /// Whether a managed save of the domain waits for its next start. The corresponding C
  /// function is `virDomainHasManagedSaveImage`.
  public func hasManagedSave() throws(LibvirtError) -> Bool {
    let r = virDomainHasManagedSaveImage(pointer, 0)
    try check(r, "reading the saved state of \(name)")
    return r == 1
  }

  /// Asks the guest to shut down (ACPI). The corresponding C function is `virDomainShutdown`.
  public func shutdown() throws(LibvirtError) { try check(virDomainShutdown(pointer), "shutting down \(name)") }

  /// Whether libvirtd starts the domain when it starts. The corresponding C function is
  /// `virDomainGetAutostart`.
  public func autostart() throws(LibvirtError) -> Bool {
    var value: Int32 = 0
    try check(virDomainGetAutostart(pointer, &value), "reading autostart of \(name)")
    return value != 0
  }

  /// Sets whether libvirtd starts the domain when it starts. The corresponding C function is
  /// `virDomainSetAutostart`.
  public func setAutostart(_ on: Bool) throws(LibvirtError) {
    try check(virDomainSetAutostart(pointer, on ? 1 : 0), "setting autostart of \(name)")
  }

  /// Pauses a running domain. The corresponding C function is `virDomainSuspend`.
  public func suspend() throws(LibvirtError) { try check(virDomainSuspend(pointer), "suspending \(name)") }

  /// Resumes a paused domain. The corresponding C function is `virDomainResume`.
  public func resume() throws(LibvirtError) { try check(virDomainResume(pointer), "resuming \(name)") }

  /// Stops the domain at once. The corresponding C function is `virDomainDestroy`.
  public func destroy() throws(LibvirtError) { try check(virDomainDestroy(pointer), "destroying \(name)") }

  /// Removes the persistent definition (and its managed save and snapshot metadata; Drover's
  /// nodes have no NVRAM, and the test driver refuses that flag).
  /// The corresponding C function is `virDomainUndefineFlags`.
  public func undefine() throws(LibvirtError) {
    let flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue
    try check(virDomainUndefineFlags(pointer, flags), "undefining \(name)")
  }

  /// Sets the vCPU count in the persistent config. The corresponding C function is
  /// `virDomainSetVcpusFlags`.
  public func setVcpus(_ count: Int, config: Bool, live: Bool, maximum: Bool = false) throws(LibvirtError) {
    var flags: UInt32 = 0
    if maximum { flags |= VIR_DOMAIN_VCPU_MAXIMUM.rawValue }
    if config { flags |= VIR_DOMAIN_AFFECT_CONFIG.rawValue }
    if live { flags |= VIR_DOMAIN_AFFECT_LIVE.rawValue }
    try check(virDomainSetVcpusFlags(pointer, UInt32(count), flags), "setting vCPUs of \(name)")
  }

  /// Sets the memory in KiB. The corresponding C function is `virDomainSetMemoryFlags`.
  public func setMemory(kibibytes: UInt64, config: Bool, live: Bool, maximum: Bool = false) throws(LibvirtError) {
    var flags: UInt32 = 0
    if config { flags |= VIR_DOMAIN_AFFECT_CONFIG.rawValue }
    if live { flags |= VIR_DOMAIN_AFFECT_LIVE.rawValue }
    if maximum { flags |= VIR_DOMAIN_MEM_MAXIMUM.rawValue }
    try check(virDomainSetMemoryFlags(pointer, UInt(kibibytes), flags), "setting memory of \(name)")
  }
}
