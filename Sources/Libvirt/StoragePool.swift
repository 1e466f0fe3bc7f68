internal import CLibvirt
import Foundation

/// A libvirt storage pool handle.
public final class StoragePool: @unchecked Sendable {
  let pointer: OpaquePointer
  public let connection: Connection

  init(pointer: OpaquePointer, connection: Connection) {
    self.pointer = pointer
    self.connection = connection
  }

  deinit { virStoragePoolFree(pointer) }

  public var name: String { virStoragePoolGetName(pointer).map { String(cString: $0) } ?? "" }

  /// The corresponding C function is `virStoragePoolIsActive`.
  public func isActive() throws(LibvirtError) -> Bool {
    let r = virStoragePoolIsActive(pointer)
    try check(r, "reading state of pool \(name)")
    return r == 1
  }

  /// Creates the pool's target (a folder for dir pools). The corresponding C function is `virStoragePoolBuild`.
  public func build() throws(LibvirtError) { try check(virStoragePoolBuild(pointer, 0), "building pool \(name)") }

  /// Starts the pool. The corresponding C function is `virStoragePoolCreate`.
  public func start() throws(LibvirtError) { try check(virStoragePoolCreate(pointer, 0), "starting pool \(name)") }

  /// Whether libvirtd starts the pool when it starts (after a host reboot).
  /// The corresponding C function is `virStoragePoolGetAutostart`.
  public func autostart() throws(LibvirtError) -> Bool {
    var value: Int32 = 0
    try check(virStoragePoolGetAutostart(pointer, &value), "reading autostart of pool \(name)")
    return value != 0
  }

  /// The corresponding C function is `virStoragePoolSetAutostart`.
  public func setAutostart(_ on: Bool) throws(LibvirtError) {
    try check(virStoragePoolSetAutostart(pointer, on ? 1 : 0), "setting autostart of pool \(name)")
  }

  /// Stops the pool (its files stay). The corresponding C function is `virStoragePoolDestroy`.
  public func stop() throws(LibvirtError) { try check(virStoragePoolDestroy(pointer), "stopping pool \(name)") }

  /// Removes the pool's definition. The corresponding C function is `virStoragePoolUndefine`.
  public func undefine() throws(LibvirtError) { try check(virStoragePoolUndefine(pointer), "undefining pool \(name)") }

  /// Re-reads the volumes on disk. The corresponding C function is `virStoragePoolRefresh`.
  public func refresh() throws(LibvirtError) { try check(virStoragePoolRefresh(pointer, 0), "refreshing pool \(name)") }

  /// The corresponding C function is `virStoragePoolGetXMLDesc`.
  public func xml() throws(LibvirtError) -> String {
    guard let text = takeString(virStoragePoolGetXMLDesc(pointer, 0)) else {
      throw LibvirtError.last(fallback: "reading XML of pool \(name)")
    }
    return text
  }

  /// The volume named `name`, or nil (`VIR_ERR_NO_STORAGE_VOL`).
  /// The corresponding C function is `virStorageVolLookupByName`.
  public func volume(named name: String) throws(LibvirtError) -> StorageVolume? {
    guard let p = virStorageVolLookupByName(pointer, name) else {
      let error = LibvirtError.last(fallback: "looking up volume \(name)")
      if error.code == .noStorageVolume { return nil }
      throw error
    }
    return StorageVolume(pointer: p, connection: connection)
  }

  /// Creates a volume from XML. The corresponding C function is `virStorageVolCreateXML`.
  public func createVolume(xml: String) throws(LibvirtError) -> StorageVolume {
    guard let p = virStorageVolCreateXML(pointer, xml, 0) else {
      throw LibvirtError.last(fallback: "creating volume in pool \(name)")
    }
    return StorageVolume(pointer: p, connection: connection)
  }

  /// The names of every volume. The corresponding C function is `virStoragePoolListAllVolumes`.
  public func volumeNames() throws(LibvirtError) -> [String] {
    var list: UnsafeMutablePointer<virStorageVolPtr?>?
    let count = virStoragePoolListAllVolumes(pointer, &list, 0)
    try check(count, "listing volumes of pool \(name)")
    guard let list else { return [] }
    defer { free(list) }
    return (0..<Int(count)).compactMap { i in
      guard let v = list[i] else { return nil }
      defer { virStorageVolFree(v) }
      return virStorageVolGetName(v).map { String(cString: $0) }
    }
  }
}

/// A libvirt storage volume handle.
public final class StorageVolume: @unchecked Sendable {
  let pointer: OpaquePointer
  public let connection: Connection

  init(pointer: OpaquePointer, connection: Connection) {
    self.pointer = pointer
    self.connection = connection
  }

  deinit { virStorageVolFree(pointer) }

  public var name: String { virStorageVolGetName(pointer).map { String(cString: $0) } ?? "" }

  /// The corresponding C function is `virStorageVolGetPath`.
  public func path() throws(LibvirtError) -> String {
    guard let p = takeString(virStorageVolGetPath(pointer)) else { throw LibvirtError.last(fallback: "reading path of \(name)") }
    return p
  }

  /// The corresponding C function is `virStorageVolGetXMLDesc`.
  public func xml() throws(LibvirtError) -> String {
    guard let x = takeString(virStorageVolGetXMLDesc(pointer, 0)) else { throw LibvirtError.last(fallback: "reading XML of volume \(name)") }
    return x
  }

  /// The corresponding C function is `virStorageVolDelete`.
  public func delete() throws(LibvirtError) { try check(virStorageVolDelete(pointer, 0), "deleting volume \(name)") }
}

extension Connection {
  /// The storage pool named `name`, or nil (`VIR_ERR_NO_STORAGE_POOL`).
  /// The corresponding C function is `virStoragePoolLookupByName`.
  public func storagePool(named name: String) throws(LibvirtError) -> StoragePool? {
    guard let p = virStoragePoolLookupByName(pointer, name) else {
      let error = LibvirtError.last(fallback: "looking up pool \(name)")
      if error.code == .noStoragePool { return nil }
      throw error
    }
    return StoragePool(pointer: p, connection: self)
  }

  /// Defines a persistent storage pool. The corresponding C function is `virStoragePoolDefineXML`.
  public func defineStoragePool(xml: String) throws(LibvirtError) -> StoragePool {
    guard let p = virStoragePoolDefineXML(pointer, xml, 0) else { throw LibvirtError.last(fallback: "defining pool") }
    return StoragePool(pointer: p, connection: self)
  }
}
