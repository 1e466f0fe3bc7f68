import DroverBasics
import Foundation
import Synchronization
import Testing

/// `BlockingFanOut` must really run `width` blocking calls at once: `concurrentPerform`, which it
/// replaced, capped them at the CPU count (2 here), halving apply and observe throughput.
@Suite struct BlockingFanOutTests {
  final class Gauge: Sendable {
    let current = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
    func enter() {
      let now = current.add(1, ordering: .relaxed).newValue
      _ = peak.max(now, ordering: .relaxed)
    }
    func leave() { _ = current.subtract(1, ordering: .relaxed) }
  }

  @Test(arguments: [1, 3, 8])
  func runsExactlyWidthCallsAtOnceWhateverTheCPUCount(width: Int) {
    let gauge = Gauge()
    let start = DispatchSemaphore(value: 0)
    let entered = Atomic<Int>(0)
    BlockingFanOut.forEach(24, width: width) { _ in
      gauge.enter()
      // Hold each slot until `width` calls are inside (or give up after 2 s): the peak can then
      // only be `width` if the threads really exist, and never more.
      if entered.add(1, ordering: .relaxed).newValue % width == 0 { for _ in 0..<width { start.signal() } }
      _ = start.wait(timeout: .now() + 2)
      gauge.leave()
    }
    #expect(gauge.peak.load(ordering: .relaxed) == width)
  }

  @Test func mapKeepsIndexOrderAndVisitsEveryIndexOnce() {
    let visits = Mutex<[Int: Int]>([:])
    let result = BlockingFanOut.map(100, width: 7) { i -> Int in
      visits.withLock { $0[i, default: 0] += 1 }
      return i * i
    }
    #expect(result == (0..<100).map { $0 * $0 })
    #expect(visits.withLock { $0 }.values.allSatisfy { $0 == 1 })
    #expect(BlockingFanOut.map(0, width: 4) { $0 }.isEmpty)
  }
}
