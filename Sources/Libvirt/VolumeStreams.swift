internal import CLibvirt
import Foundation

/// Volume upload and download through libvirt streams (`virStorageVolUpload`/`Download`): the
/// bytes travel over the connection itself, so a remote host receives an image without any
/// shared file system or second transport.
extension StorageVolume {
  /// Sends `length` bytes starting at `offset` of the volume, read by `read` in chunks (it
  /// fills the buffer and returns how many bytes it put there; 0 ends early, an error).
  /// The corresponding C functions are `virStreamNew`, `virStorageVolUpload`, `virStreamSend`,
  /// `virStreamFinish`.
  public func upload(offset: UInt64 = 0, length: UInt64, read: (UnsafeMutableRawBufferPointer) -> Int) throws(LibvirtError) {
    guard let stream = virStreamNew(connection.pointer, 0) else { throw LibvirtError.last(fallback: "opening a stream to \(name)") }
    defer { virStreamFree(stream) }
    try check(virStorageVolUpload(pointer, stream, offset, length, 0), "starting the upload of \(name)")
    let chunk = 1 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buffer.deallocate() }
    var sent: UInt64 = 0
    while sent < length {
      let want = Int(min(UInt64(chunk), length - sent))
      let n = read(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
      guard n > 0 else {
        virStreamAbort(stream)
        throw LibvirtError(code: .internalError, message: "the source of \(name) ended after \(sent) of \(length) bytes")
      }
      var done = 0
      while done < n {
        let r = virStreamSend(stream, buffer.baseAddress!.advanced(by: done).assumingMemoryBound(to: CChar.self), n - done)
        guard r > 0 else {
          let error = LibvirtError.last(fallback: "sending \(name)")
          virStreamAbort(stream)
          throw error
        }
        done += Int(r)
      }
      sent += UInt64(n)
    }
    try check(virStreamFinish(stream), "finishing the upload of \(name)")
  }

  /// Receives the volume's bytes from `offset` (`length` 0: to the end), handing each chunk to
  /// `body`. Returns how many bytes arrived.
  @discardableResult
  public func download(offset: UInt64 = 0, length: UInt64 = 0, _ body: (UnsafeRawBufferPointer) -> Void) throws(LibvirtError) -> UInt64 {
    guard let stream = virStreamNew(connection.pointer, 0) else { throw LibvirtError.last(fallback: "opening a stream from \(name)") }
    defer { virStreamFree(stream) }
    try check(virStorageVolDownload(pointer, stream, offset, length, 0), "starting the download of \(name)")
    let chunk = 1 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buffer.deallocate() }
    var received: UInt64 = 0
    while true {
      let r = virStreamRecv(stream, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), chunk)
      if r == 0 { break }
      guard r > 0 else {
        let error = LibvirtError.last(fallback: "receiving \(name)")
        virStreamAbort(stream)
        throw error
      }
      body(UnsafeRawBufferPointer(rebasing: buffer[0..<Int(r)]))
      received += UInt64(r)
    }
    try check(virStreamFinish(stream), "finishing the download of \(name)")
    return received
  }

  /// The volume's capacity and allocation in bytes. The corresponding C function is `virStorageVolGetInfo`.
  public func info() throws(LibvirtError) -> (capacity: UInt64, allocation: UInt64) {
    var info = virStorageVolInfo()
    try check(virStorageVolGetInfo(pointer, &info), "reading the size of \(name)")
    return (info.capacity, info.allocation)
  }
}
