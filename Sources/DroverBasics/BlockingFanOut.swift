import Foundation
import Synchronization

/// Runs blocking work (libvirt calls, process waits, health probes) on several threads at once.
///
/// Why not `DispatchQueue.concurrentPerform`: it never runs more iterations at once than there
/// are CPUs, because it assumes the work keeps a CPU busy. Here the work mostly waits on a daemon,
/// a VM or a socket, and on this project's 2-core machines `concurrentPerform(iterations: 8)` of a
/// 0.2 s sleep took 0.8 s — "4 calls in flight" silently became 2. Dedicated threads give the
/// width asked for.
public enum BlockingFanOut {
  /// Calls `body(i)` for every `i` in `0..<count`, at most `width` at a time, and returns when all
  /// have finished. Indices are handed out in order; the calling thread works too.
  public static func forEach(_ count: Int, width: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let threads = max(1, min(width, count))
    if threads == 1 {
      for i in 0..<count { body(i) }
      return
    }
    withoutActuallyEscaping(body) { body in
      let job = Job(count: count, body: body)
      // pthreads joined below, not Foundation `Thread`s: every thread must have dropped its
      // reference to `job` (and so to `body`) before this block returns, which
      // `withoutActuallyEscaping` checks.
      var threadsStarted: [pthread_t] = []
      for _ in 1..<threads {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        if pthread_create(&thread, nil, { context in
          let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
          job.loop()
          return nil
        }, context) == 0 {
          threadsStarted.append(thread)
        } else {
          Unmanaged<Job>.fromOpaque(context).release()  // no thread: the caller does the work
        }
      }
      job.loop()
      for thread in threadsStarted { pthread_join(thread, nil) }
    }
  }

  /// The shared state of one `forEach`: the next index to hand out and the work.
  private final class Job: @unchecked Sendable {
    let count: Int
    let body: (Int) -> Void
    let next = Atomic<Int>(0)
    init(count: Int, body: @escaping (Int) -> Void) {
      self.count = count
      self.body = body
    }
    func loop() {
      while true {
        let i = next.add(1, ordering: .relaxed).oldValue
        if i >= count { return }
        body(i)
      }
    }
  }

  /// `forEach` collecting one result per index, in index order.
  public static func map<T>(_ count: Int, width: Int, _ body: (Int) -> T) -> [T] {
    var results = [T?](repeating: nil, count: count)
    results.withUnsafeMutableBufferPointer { buffer in
      // Each index is written by exactly one thread, and read only after all have joined.
      nonisolated(unsafe) let out = buffer
      forEach(count, width: width) { i in out[i] = body(i) }
    }
    return results.map { $0! }
  }
}
