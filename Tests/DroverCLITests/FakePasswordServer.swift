import Foundation
import Synchronization

/// A loopback TCP server that speaks just enough of PostgreSQL's protocol to ask a client for its
/// password (#40): it reads the startup message, answers `AuthenticationCleartextPassword` (3) or
/// `AuthenticationMD5Password` (5, with a salt), then records whatever the client sends next for
/// a few seconds. Not a database: the one thing it proves is what a client would hand a hostile
/// server.
final class FakePasswordServer: @unchecked Sendable {
  let port: Int
  private let listener: Int32
  final class Record: Sendable {
    let value = Mutex<(startup: [UInt8], after: [UInt8])>(([], []))
  }
  private let log = Record()
  private let done = DispatchSemaphore(value: 0)

  init(authenticationCode: Int32) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, 4) == 0 else {
      close(fd)
      throw POSIXError(.EADDRINUSE)
    }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    port = Int(UInt16(bigEndian: address.sin_port))
    listener = fd
    let log = log, done = done
    Thread.detachNewThread {
      defer { done.signal() }
      var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard Glibc.poll(&poll, 1, 30_000) == 1 else { return }
      let client = accept(fd, nil, nil)
      guard client >= 0 else { return }
      defer { close(client) }
      var timeout = timeval(tv_sec: 3, tv_usec: 0)
      setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      func read(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
          let n = bytes.withUnsafeMutableBytes { recv(client, $0.baseAddress! + got, count - got, 0) }
          if n <= 0 { break }
          got += n
        }
        return Array(bytes.prefix(got))
      }
      let head = read(4)
      guard head.count == 4 else { return }
      let length = Int(head.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) })
      let startup = head + read(max(0, min(length, 1 << 16) - 4))
      log.value.withLock { $0.startup = startup }
      // 'R', length, the request (and MD5's 4-byte salt).
      var request: [UInt8] = [UInt8(ascii: "R")]
      let body: [UInt8] = withUnsafeBytes(of: authenticationCode.bigEndian, Array.init) + (authenticationCode == 5 ? [1, 2, 3, 4] : [])
      request += withUnsafeBytes(of: Int32(4 + body.count).bigEndian, Array.init) + body
      _ = request.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      var after: [UInt8] = []
      while after.count < 1 << 16 {
        let chunk = read(1)
        if chunk.isEmpty { break }
        after += chunk
      }
      log.value.withLock { $0.after = after }
    }
  }

  /// The startup message, and every byte that came after the password request (waits, bounded,
  /// for the client to close or go quiet).
  func received() -> (startup: [UInt8], after: [UInt8]) {
    _ = done.wait(timeout: .now() + 40)
    return log.value.withLock { $0 }
  }

  deinit { close(listener) }
}
