import DroverModel
import DroverBasics
import Foundation
import Libvirt

/// Drover's image storage pool, overlays and build machines over libvirt.
extension LibvirtHostBackend: ImageHost {
  /// The file that marks a pool's folder as Drover's own.
  static let poolMarker = ".drover-pool"
  static let buildNamespace = "https://drover.dev/xmlns/build/1"

  public func ensureImagePool(name: String, directory: String) throws {
    try guarded("preparing storage pool \(name)") { [self] in try self.ensureImagePoolNow(name: name, directory: directory) }
  }

  /// The marker is a volume of the pool, read and written through libvirt: the host may be
  /// another machine, whose files Drover never sees. (An older Drover wrote the same file
  /// directly; libvirt lists it as a volume just the same.)
  func ensureImagePoolNow(name: String, directory: String) throws {
    do {
      if let pool = try connection.storagePool(named: name) {
        if try !pool.isActive() { try pool.start() }
        // The test driver's pools live in its memory: there is no folder to mark or protect.
        if bootsNodes {
          let path = DomainXMLReader.text(in: try pool.xml(), element: "path")?.trimmingCharacters() ?? ""
          if path == directory, try pool.volume(named: Self.poolMarker) == nil { try pool.refresh() }
          guard path == directory, try pool.volume(named: Self.poolMarker) != nil else {
            throw HostError(
              uri: uri, operation: "refusing to use storage pool \(name)",
              reason: "it exists at \(path.isEmpty ? "an unknown path" : path) and was not created by Drover (no \(Self.poolMarker) volume in \(directory)); pass another --image-pool")
          }
          // Drover's own pool (a Drover from before this defined it without autostart).
          if try !pool.autostart() { try pool.setAutostart(true) }
        }
        return
      }
      calls.record("define")
      let pool: StoragePool
      do {
        pool = try connection.defineStoragePool(xml: """
          <pool type='dir'><name>\(XMLText.text(name))</name>
          <target><path>\(XMLText.text(directory))</path><permissions><mode>0755</mode></permissions></target></pool>
          """)
      } catch {
        // Another Drover process defined it a moment ago: use that one (checked as above).
        if try connection.storagePool(named: name) != nil { return try ensureImagePoolNow(name: name, directory: directory) }
        throw error
      }
      try pool.build()
      try pool.start()
      // The nodes' disks are in it: after a host reboot it must be there before any node starts.
      try pool.setAutostart(true)
      if bootsNodes {
        _ = try pool.createVolume(xml: """
          <volume><name>\(Self.poolMarker)</name><capacity unit='bytes'>512</capacity>
          <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>
          """)
      }
    } catch let error as LibvirtError {
      throw HostError(uri: uri, operation: "cannot prepare storage pool \(name)", libvirt: error)
    }
  }

  /// Runs `body` with the pool `pool` on the stream connection, one stream at a time.
  ///
  /// Refused over libvirt's libssh transport, for every stream (image pushes, read-backs,
  /// console reads): measured with libvirt 9.0 here, a stream there hung in `virStreamRecv`
  /// without libvirt's event loop, and the client crashed with one.
  func withStreamPool<T>(_ pool: String, _ body: (StoragePool) throws -> T) throws -> T {
    if Self.usesLibssh(uri) {
      throw HostError(
        uri: uri, operation: "refusing a volume transfer",
        reason: "libvirt's libssh transport does not carry volume streams reliably; name the host by qemu+ssh:// (OpenSSH; its known hosts come from this machine's ssh configuration)")
    }
    return try streamConnection.withLock { held -> T in
      if held == nil { held = try streamOpener?() ?? connection }
      guard let connection = held, let p = try connection.storagePool(named: pool) else {
        throw HostError(uri: uri, operation: "cannot reach storage pool \(pool)", reason: "the pool does not exist")
      }
      return try body(p)
    }
  }

  public func volume(pool: String, name: String) throws -> (bytes: UInt64, path: String)? {
    try guarded("reading volume \(pool)/\(name)") { [self] in
      do {
        let p = try storagePoolHandle(pool)
        calls.record("volume-lookup")
        guard let v = try p.volume(named: name) else { return nil }
        return (try v.info().capacity, try v.path())
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot read volume \(pool)/\(name)", libvirt: error)
      }
    }
  }

  public func upload(file: String, pool: String, name: String) throws -> String {
    let fd = open(file, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw HostError(uri: uri, operation: "cannot upload \(name)", reason: "cannot open \(file): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    return try upload(length: UInt64(st.st_size), pool: pool, name: name) { buffer in Glibc.read(fd, buffer.baseAddress, buffer.count) }
  }

  public func upload(bytes: [UInt8], pool: String, name: String) throws -> String {
    var offset = 0
    return try upload(length: UInt64(bytes.count), pool: pool, name: name) { buffer in
      let n = min(buffer.count, bytes.count - offset)
      bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
      offset += n
      return n
    }
  }

  /// A new volume `name` of `length` bytes, filled by `source` (it fills the buffer and returns
  /// how many bytes it put there), hashed while sent.
  func upload(length size: UInt64, pool: String, name: String, from read: @escaping (UnsafeMutableRawBufferPointer) -> Int) throws -> String {
    let source = StreamSource(read)
    return try guarded("uploading \(name)", timeout: max(callTimeout, Double(size) / 5_000_000 + 60)) { [self] in
      do {
        return try withStreamPool(pool) { p in
          if let stale = try p.volume(named: name) { try stale.delete() }
          calls.record("define")
          let volume = try p.createVolume(xml: """
            <volume><name>\(XMLText.text(name))</name><capacity unit='bytes'>\(size)</capacity>
            <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>
            """)
          var digest = StreamingDigest()
          calls.record("upload")
          try volume.upload(length: size) { buffer in
            let n = source.read(buffer)
            if n > 0 { digest.update(Data(bytes: buffer.baseAddress!, count: n)) }
            return max(n, 0)
          }
          return digest.finalize()
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot upload \(name)", libvirt: error)
      }
    }
  }

  public func markVerified(pool: String, name: String) throws {
    try guarded("marking \(name) verified") { [self] in
      do {
        let p = try storagePoolHandle(pool)
        calls.record("define")
        if try p.volume(named: PoolVolumeNames.verifiedMark(of: name)) == nil {
          _ = try p.createVolume(xml: """
            <volume><name>\(XMLText.text(PoolVolumeNames.verifiedMark(of: name)))</name><capacity unit='bytes'>0</capacity>
            <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>
            """)
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot mark \(name) verified", libvirt: error)
      }
    }
  }

  public func digest(pool: String, name: String) throws -> String {
    try guarded("reading back \(name)", timeout: callTimeout * 20) { [self] in
      do {
        return try withStreamPool(pool) { p in
          guard let volume = try p.volume(named: name) else {
            throw HostError(uri: uri, operation: "cannot read back \(name)", reason: "the pool has no such volume")
          }
          var digest = StreamingDigest()
          calls.record("download")
          try volume.download { digest.update(Data($0)) }
          return digest.finalize()
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot read back \(name)", libvirt: error)
      }
    }
  }

  public func read(pool: String, name: String, offset: UInt64) throws -> [UInt8]? {
    try read(pool: pool, name: name, from: { _ in offset })?.bytes
  }

  /// The last `maxBytes` of a volume and the offset they start at (a console log that grew for
  /// days is not fetched whole for its last lines).
  public func readTail(pool: String, name: String, maxBytes: UInt64) throws -> (bytes: [UInt8], base: UInt64)? {
    try read(pool: pool, name: name, from: { size in size > maxBytes ? size - maxBytes : 0 })
  }

  /// The first `maxBytes` of a volume (a console log read for what its boot printed first).
  public func readHead(pool: String, name: String, maxBytes: UInt64) throws -> [UInt8]? {
    try read(pool: pool, name: name, from: { _ in 0 }, maxBytes: maxBytes)?.bytes
  }

  /// Reads a volume from the offset `from` gives for its size, at most `maxBytes` of it.
  func read(pool: String, name: String, from start: @escaping @Sendable (UInt64) -> UInt64, maxBytes: UInt64 = .max) throws -> (bytes: [UInt8], base: UInt64)? {
    try guarded("reading \(name)") { [self] in
      do {
        return try withStreamPool(pool) { p -> (bytes: [UInt8], base: UInt64)? in
          // A file QEMU made in the pool (a console log) is a volume only once the pool is re-read.
          var volume = try p.volume(named: name)
          if volume == nil {
            try p.refresh()
            volume = try p.volume(named: name)
          }
          guard let volume else { return nil }
          let size = try volume.info().capacity
          let offset = start(size)
          guard size > offset else { return ([], offset) }
          var bytes: [UInt8] = []
          calls.record("download")
          try volume.download(offset: offset, length: min(size - offset, maxBytes)) { bytes += $0 }
          return (bytes, offset)
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot read \(name)", libvirt: error)
      }
    }
  }

  public func refreshImagePool(name: String) throws {
    do { try connection.storagePool(named: name)?.refresh() } catch {
      throw HostError(uri: uri, operation: "cannot refresh storage pool \(name)", libvirt: error)
    }
  }

  /// One call per node in the usual case (the volume create; the pool handle is looked up once per
  /// connection): a leftover of the same name (a crash before its domain was defined) is deleted
  /// and the create retried.
  public func createOverlay(pool: String, name: String, backingPath: String, capacityBytes: UInt64) throws {
    try guarded("creating overlay \(name)") { [self] in try self.createOverlayNow(pool: pool, name: name, backingPath: backingPath, capacityBytes: capacityBytes) }
  }

  func createOverlayNow(pool: String, name: String, backingPath: String, capacityBytes: UInt64) throws {
    let xml = """
      <volume><name>\(XMLText.text(name))</name><capacity unit='bytes'>\(capacityBytes)</capacity><allocation unit='bytes'>0</allocation>
      <target><format type='qcow2'/><permissions><mode>0644</mode></permissions></target>
      <backingStore><path>\(XMLText.attribute(backingPath))</path><format type='qcow2'/></backingStore></volume>
      """
    do {
      let p = try storagePoolHandle(pool)
      calls.record("define")
      do { _ = try p.createVolume(xml: xml) } catch {
        guard let stale = try p.volume(named: name) else { throw error }
        try stale.delete()
        _ = try p.createVolume(xml: xml)
      }
    } catch let error as LibvirtError {
      throw HostError(uri: uri, node: name, operation: "cannot create overlay", libvirt: error)
    }
  }

  /// The pool's handle, looked up once per connection.
  func storagePoolHandle(_ name: String) throws -> StoragePool {
    if let cached = pools.withLock({ $0[name] }) { return cached }
    calls.record("pool-lookup")
    guard let p = try connection.storagePool(named: name) else {
      throw HostError(uri: uri, operation: "cannot create overlays", reason: "storage pool \(name) does not exist")
    }
    pools.withLock { $0[name] = p }
    return p
  }

  public func deleteVolume(pool: String, name: String) throws {
    try guarded("deleting volume \(pool)/\(name)") { [self] in try self.deleteVolumeNow(pool: pool, name: name) }
  }

  func deleteVolumeNow(pool: String, name: String) throws {
    do {
      guard let p = try connection.storagePool(named: pool), let volume = try p.volume(named: name) else { return }
      calls.record("undefine")
      try volume.delete()
    } catch {
      throw HostError(uri: uri, operation: "cannot delete volume \(pool)/\(name)", libvirt: error)
    }
  }

  public func bootBuildMachine(_ m: BuildMachine) throws {
    let targets = ["vda", "vdb", "vdc", "vdd"]
    var disks = ""
    for (i, disk) in m.disks.enumerated() {
      disks += """
            <disk type='file' device='disk'><driver name='qemu' type='\(XMLText.attribute(disk.format))' cache='unsafe'/>
            <source file='\(XMLText.attribute(disk.path))'/><target dev='\(targets[i])' bus='virtio'/></disk>

        """
    }
    let xml = """
      <domain type='\(bootsNodes ? "qemu" : "test")'>
        <name>\(XMLText.text(m.name))</name>
        <title>drover build machine</title>
        <metadata><drover:build xmlns:drover="\(Self.buildNamespace)"/></metadata>
        <memory unit='MiB'>\(m.memoryMiB)</memory><vcpu>1</vcpu>
        <os><type arch='x86_64'>hvm</type><kernel>\(XMLText.text(m.kernel))</kernel>
          <initrd>\(XMLText.text(m.initrd))</initrd><cmdline>\(XMLText.text(m.cmdline))</cmdline></os>
        <features><acpi/></features>
        <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
        <devices>
      \(disks)    <serial type='file'><source path='\(XMLText.attribute(m.consoleLog))'/><target port='0'/></serial>
          <controller type='usb' model='none'/><memballoon model='none'/>
        </devices>
      </domain>
      """
    do {
      calls.record("define")
      let domain = try connection.defineDomain(xml: xml)
      do {
        calls.record("start")
        try domain.start()
      } catch {
        try? domain.undefine()
        throw error
      }
    } catch let error as LibvirtError {
      throw HostError(uri: uri, node: m.name, operation: "cannot boot build machine", libvirt: error)
    }
  }

  public func removeBuildMachine(name: String) throws {
    do {
      guard let domain = try connection.domain(named: name),
        try domain.metadata(namespace: Self.buildNamespace) != nil
      else { return }
      if try domain.state().isActive {
        calls.record("destroy")
        try? domain.destroy()
      }
      calls.record("undefine")
      try domain.undefine()
    } catch {
      if error.code == .noDomain { return }
      throw HostError(uri: uri, node: name, operation: "cannot remove build machine", libvirt: error)
    }
  }

  public func buildMachineNames() throws -> [String] {
    do {
      return try connection.allDomains().compactMap { d in
        (try? d.metadata(namespace: Self.buildNamespace)) != nil ? d.name : nil
      }
    } catch {
      throw HostError(uri: uri, operation: "cannot list domains", libvirt: error)
    }
  }
}

/// The reader of one upload, handed to the thread that runs it under its deadline (only that
/// thread calls it).
final class StreamSource: @unchecked Sendable {
  let read: (UnsafeMutableRawBufferPointer) -> Int
  init(_ read: @escaping (UnsafeMutableRawBufferPointer) -> Int) { self.read = read }
}

extension LibvirtHostBackend: HostCordoning {
  /// The marker is an empty raw volume made from XML, never a stream: streams are refused over
  /// libssh (see `withStreamPool`), and a cordon must work on every host.
  public func setCordon(_ cordoned: Bool, imagePool: String, directory: String) throws {
    try guarded("\(cordoned ? "cordoning" : "uncordoning") the host") { [self] in
      if cordoned { try self.ensureImagePoolNow(name: imagePool, directory: directory) }
      do {
        guard let pool = try connection.storagePool(named: imagePool) else { return }
        let present = try pool.volume(named: HostCordon.volume)
        if cordoned, present == nil {
          calls.record("volume-create")
          _ = try pool.createVolume(xml: """
            <volume><name>\(HostCordon.volume)</name><capacity unit='bytes'>0</capacity>
            <target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>
            """)
        } else if !cordoned, let present {
          calls.record("volume-delete")
          try present.delete()
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot \(cordoned ? "cordon" : "uncordon") the host in storage pool \(imagePool)", libvirt: error)
      }
    }
  }
}
