internal import CLibvirt
import Foundation

/// Process-wide libvirt set-up: silence libvirt's own stderr printing, and run libvirt's event
/// loop when a connection needs it.
///
/// Why an event loop: libvirt's keepalive (how a daemon that stops answering is noticed) only
/// works when "the client has to implement and run an event loop" (libvirt-host.c). A local
/// daemon that dies closes its socket, but one that freezes does not, so every connection asks
/// for keepalive unless the user turns it off (`--keepalive-interval 0`). Its cost: once a loop is
/// registered, every connection opened afterwards also hands incoming replies to the loop thread,
/// which contends with the calling threads for the client lock. Measured with `drover-bench
/// fleet` (1,000 domains over `test+unix`, same run): plan 1.4–2.0× and drift 1.2–1.5× the time
/// with keepalive off, apply 1.06×.
public enum Libvirt {
  private static let once: Void = {
    virSetErrorFunc(nil) { _, _ in }
    // libvirt's remote transports write to sockets a peer may already have closed (an ssh
    // session ending): the write must fail with EPIPE, not kill the process (virsh does the same).
    signal(SIGPIPE, SIG_IGN)
    virInitialize()
  }()

  private static let eventLoop: Void = {
    initialize()
    // Drover's own loop (`EventLoop`); `DROVER_LIBVIRT_EVENT_LOOP=default` runs libvirt's instead
    // (the benchmark compares them).
    if ProcessInfo.processInfo.environment["DROVER_LIBVIRT_EVENT_LOOP"] != "default" {
      _ = EventLoop.start()
      return
    }
    if virEventRegisterDefaultImpl() == 0 {
      let thread = Thread {
        while true { _ = virEventRunDefaultImpl() }
      }
      thread.name = "libvirt-events"
      thread.start()
    }
  }()

  /// Idempotent; every entry point of this module calls it.
  public static func initialize() { _ = once }

  /// Starts the event loop thread (idempotent); `Connection.open` calls it before opening a
  /// connection that asks for keepalive.
  static func startEventLoop() { _ = eventLoop }

  /// The libvirt library version as "major.minor.micro".
  public static var version: String {
    initialize()
    var v: UInt = 0
    guard virGetVersion(&v, nil, nil) == 0 else { return "unknown" }
    return "\(v / 1_000_000).\((v / 1000) % 1000).\(v % 1000)"
  }
}

/// Runs a C call that returns -1 on failure; throws libvirt's error.
@inline(__always)
func check(_ result: Int32, _ what: @autoclosure () -> String) throws(LibvirtError) {
  if result < 0 { throw LibvirtError.last(fallback: "\(what()) failed") }
}

/// Takes ownership of a libvirt-allocated C string (freed here).
func takeString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
  guard let p else { return nil }
  defer { free(p) }
  return String(cString: p)
}
