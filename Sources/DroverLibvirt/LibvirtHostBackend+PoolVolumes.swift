import DroverModel
import DroverBasics
import Foundation
import Libvirt

/// Listing, inspecting and fetching the volumes of Drover's image pool on a host: what per-host
/// garbage collection and `drover images fetch` read, always through libvirt.
extension LibvirtHostBackend {
  public func volumeNames(pool: String) throws -> [String] {
    try guarded("listing volumes of \(pool)") { [self] in
      do {
        guard let p = try connection.storagePool(named: pool) else { return [] }
        calls.record("pool-refresh")
        try p.refresh()  // files QEMU or another Drover added since the pool was last read
        calls.record("volume-list")
        return try p.volumeNames()
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot list volumes of \(pool)", libvirt: error)
      }
    }
  }

  public func backingPath(pool: String, name: String) throws -> String? {
    try guarded("reading volume \(pool)/\(name)") { [self] in
      do {
        guard let p = try connection.storagePool(named: pool), let v = try p.volume(named: name) else { return nil }
        calls.record("volume-xml")
        let xml = try v.xml()
        guard let start = xml.range(of: "<backingStore") else { return nil }
        return DomainXMLReader.text(in: String(xml[start.lowerBound...]), element: "path")?.trimmingCharacters()
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot read volume \(pool)/\(name)", libvirt: error)
      }
    }
  }

  public func download(pool: String, name: String, into fd: Int32) throws -> (bytes: UInt64, sha256: String) {
    try guarded("fetching \(name)", timeout: callTimeout * 20) { [self] in
      do {
        return try withStreamPool(pool) { p in
          guard let volume = try p.volume(named: name) else {
            throw HostError(uri: uri, operation: "cannot fetch \(name)", reason: "the pool has no such volume")
          }
          var digest = StreamingDigest()
          var failure: Int32 = 0
          calls.record("download")
          let bytes = try volume.download { chunk in
            digest.update(Data(chunk))
            var done = 0
            while failure == 0, done < chunk.count {
              let n = write(fd, chunk.baseAddress!.advanced(by: done), chunk.count - done)
              if n <= 0 { failure = errno } else { done += n }
            }
          }
          if failure != 0 {
            throw HostError(uri: uri, operation: "cannot fetch \(name)", reason: "writing it here failed: \(String(cString: strerror(failure)))")
          }
          return (bytes, digest.finalize())
        }
      } catch let error as LibvirtError {
        throw HostError(uri: uri, operation: "cannot fetch \(name)", libvirt: error)
      }
    }
  }
}
