internal import CLibvirt
import Foundation

/// Process-wide libvirt set-up: silence libvirt's own stderr printing and run its event loop.
///
/// Why an event loop: libvirt's keepalive (how a dead remote host is noticed) only works when
/// "the client has to implement and run an event loop" (libvirt-host.c); without it a remote
/// connection can hang. The loop runs on its own thread for the life of the process.
public enum Libvirt {
  private static let once: Void = {
    virSetErrorFunc(nil) { _, _ in }
    virInitialize()
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
