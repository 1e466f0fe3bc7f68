@testable import DroverCommands
import Foundation
import Testing

/// #39: apply's progress clock agrees with `String(format: "%7.2fs")`, which it replaced.
@Suite struct ProgressClockTests {
  @Test(arguments: [0, 0.004, 0.005, 0.01, 0.1, 0.99, 0.995, 1, 9.99, 12.345, 99.9, 1234.56, 9999.99, 12345.67])
  func agreesWithTheFormatter(_ seconds: Double) {
    let expected = String(format: "%7.2fs", seconds)
    // Ties (x.xx5) may round either way in binary floating point; compare to the nearest cent.
    let reference = String(format: "%7.2fs", (seconds * 100).rounded() / 100)
    #expect(ApplyProgress.clock(seconds) == reference || ApplyProgress.clock(seconds) == expected, "\(seconds)")
  }
}
