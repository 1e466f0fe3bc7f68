import Foundation

/// Several contenders timed in the same run, interleaved round by round (A B C, A B C, …) so
/// that a slow moment of the machine hits every contender alike rather than one of them.
struct Contest {
  struct Entry {
    var name: String
    /// Fewer runs for slow peers (an Ansible playbook at 5,000 domains takes ~25 s).
    var runs: Int
    /// Untimed preparation before each run (removing what the last run created).
    var setup: (() throws -> Void)?
    var body: () throws -> Void
  }

  var entries: [Entry] = []

  mutating func add(_ name: String, runs: Int, setup: (() throws -> Void)? = nil, _ body: @escaping () throws -> Void) {
    entries.append(Entry(name: name, runs: max(1, runs), setup: setup, body: body))
  }

  /// Runs one warm-up of each, then the rounds; returns each contender's median in seconds.
  /// A contender that throws is reported as nil (with its error printed once).
  func run() -> [String: Double] {
    var samples: [String: [Double]] = [:]
    var failed: Set<String> = []
    let rounds = entries.map(\.runs).max() ?? 0
    for round in -1..<rounds {
      for entry in entries where round < entry.runs && !failed.contains(entry.name) {
        do {
          try entry.setup?()
          let t = try Stopwatch.seconds(entry.body)
          if round >= 0 { samples[entry.name, default: []].append(t) }
        } catch {
          print("  \(entry.name): \(error)")
          failed.insert(entry.name)
        }
      }
    }
    return samples.mapValues(median)
  }
}

/// Table lines: a contender's time and, against a baseline, the ratio and the target.
enum Report {
  static func time(_ label: String, _ seconds: Double?, note: String = "") -> String {
    "  \(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \((seconds.map(Stopwatch.format) ?? "n/a").padding(toLength: 10, withPad: " ", startingAt: 0)) \(note)"
  }

  /// "drover/baseline = 0.83×  target ≤ 1.0×: MET"
  static func ratio(_ drover: Double?, _ baseline: Double?, atMost target: Double?) -> String {
    guard let drover, let baseline, baseline > 0 else { return "" }
    let r = drover / baseline
    var s = String(format: "drover/this = %.2f×", r)
    if let target { s += String(format: "   target ≤ %g×: %@", target, r <= target ? "MET" : "MISSED") }
    return s
  }

  /// "drover is 8.1× faster  target ≥ 4×: MET"
  static func speedup(_ drover: Double?, _ peer: Double?, atLeast target: Double?) -> String {
    guard let drover, let peer, drover > 0 else { return "" }
    let x = peer / drover
    var s = String(format: "drover is %.1f× faster", x)
    if let target { s += String(format: "   target ≥ %g×: %@", target, x >= target ? "MET" : "MISSED") }
    return s
  }
}
