import DroverBasics
import DroverSpec
import Foundation
import Testing

/// Seeded random byte and line mutations of the example specs: each result is either valid or
/// gives located diagnostics, and nothing crashes.
@Suite struct MutationTests {
  /// A small deterministic generator (SplitMix64) so failures replay from the seed.
  struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
  }

  static let interesting: [UInt8] = Array(":-[]{}#&*!|>'\"%@` \t\n\0\u{7F}".utf8) + [0xC3, 0xFF, 0x80]

  static func mutate(_ input: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
    var bytes = input
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
      guard !bytes.isEmpty else { break }
      let at = Int.random(in: 0..<bytes.count, using: &rng)
      switch Int.random(in: 0..<6, using: &rng) {
      case 0: bytes[at] = interesting.randomElement(using: &rng)!
      case 1: bytes.remove(at: at)
      case 2: bytes.insert(interesting.randomElement(using: &rng)!, at: at)
      case 3: bytes[at] = UInt8.random(in: 0...255, using: &rng)
      default:
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        let i = Int.random(in: 0..<lines.count, using: &rng), j = Int.random(in: 0..<lines.count, using: &rng)
        if Bool.random(using: &rng) { lines.swapAt(i, j) } else { lines.insert(lines[i], at: j) }
        bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
      }
    }
    return bytes
  }

  @Test(arguments: [1, 2, 3, 4])
  func mutatedExamplesGiveResultsOrLocatedDiagnostics(seed: UInt64) throws {
    let root = Fixtures.repoRoot.path
    let (sources, _) = SpecFiles.read([root + "/pools", root + "/images"])
    #expect(!sources.isEmpty)
    var rng = SeededGenerator(state: seed)
    var outcomes = (valid: 0, invalid: 0)
    for _ in 0..<500 {
      let victim = Int.random(in: 0..<sources.count, using: &rng)
      var mutated = sources
      mutated[victim].bytes = Self.mutate(sources[victim].bytes, using: &rng)
      let (_, diagnostics) = SpecLoader.load(mutated)
      if diagnostics.hasErrors { outcomes.invalid += 1 } else { outcomes.valid += 1 }
      for d in diagnostics {
        #expect(d.location != nil, "seed \(seed): \(d.message) has no location")
        #expect((d.location?.start.line ?? 0) >= 1 && (d.location?.start.column ?? 0) >= 1)
        #expect(!d.message.isEmpty)
      }
    }
    #expect(outcomes.invalid > 100, "mutations should mostly break the specs")
  }
}
