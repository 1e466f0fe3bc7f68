import Crypto
import DroverBasics
import Foundation
import Synchronization
import Testing

/// #39: the record key's MAC starts from a keyed HMAC state computed once; it must equal the
/// one-shot HMAC for every message, on many threads at once, and `verifies` must refuse any
/// other MAC.
@Suite struct RecordKeyMACTests {
  let key = RecordKey(bytes: (0..<32).map { UInt8($0 * 7 % 256) }, project: "p")

  func reference(_ message: [UInt8]) -> String {
    HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key.bytes)).map { String(format: "%02x", $0) }.joined()
  }

  @Test(arguments: [0, 1, 63, 64, 65, 1000])
  func equalsTheOneShotHMAC(_ length: Int) {
    let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
    #expect(key.mac(message) == reference(message))
    #expect(key.verifies(message, mac: reference(message)))
  }

  @Test func refusesEveryOtherMAC() {
    let message = Array("record".utf8)
    let good = reference(message)
    var flipped = Array(good.utf8)
    flipped[10] = flipped[10] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
    for bad in [String(decoding: flipped, as: UTF8.self), String(good.dropLast()), good + "0", good.uppercased(), "", reference(Array("other".utf8))] {
      #expect(!key.verifies(message, mac: bad), "\(bad)")
    }
    #expect(!RecordKey(bytes: Array(repeating: 1, count: 32), project: "p").verifies(message, mac: good), "another key")
  }

  @Test func manyThreadsAtOnceAgree() {
    let wrong = Mutex(0)
    BlockingFanOut.forEach(400, width: 8) { i in
      let message = Array("node-\(i)".utf8)
      if key.mac(message) != reference(message) { wrong.withLock { $0 += 1 } }
    }
    #expect(wrong.withLock { $0 } == 0)
  }

  @Test func equalityIgnoresThePreparedState() {
    #expect(RecordKey(bytes: key.bytes, project: "p") == key)
    #expect(Set([RecordKey(bytes: key.bytes, project: "p"), key]).count == 1)
    #expect(RecordKey(bytes: key.bytes, project: "q") != key)
  }
}
