import Foundation
import Synchronization

/// Runs a blocking call with a deadline: on a thread of its own, waited for at most `seconds`.
///
/// Why a thread: a libvirt call to a daemon that froze mid-call blocks in the kernel and cannot be
/// cancelled. Past the deadline the caller gets nil and goes on; the call's thread is abandoned
/// (the command fails and exits, which ends it).
public enum Deadline {
  public static func run<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () throws -> T) throws -> T? {
    let box = Mutex<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
      let result = Result { try body() }
      box.withLock { $0 = result }
      done.signal()
    }
    thread.stackSize = 1 << 20
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success, let result = box.withLock({ $0 }) else { return nil }
    return try result.get()
  }
}
