import DroverBasics

/// What one failed health probe saw, sorted by how it failed, so a failed check can report the
/// probe that says the most (a command's own exit status and message) instead of whichever probe
/// happened to be last — typically one cut off by the deadline, which says nothing.
struct ProbeMiss: Equatable, Sendable {
  enum Kind: String, CaseIterable, Sendable {
    /// The node is not far enough along to be asked (no address, no console line, no pinned keys).
    case waiting = "waiting"
    /// Nothing answered (connection refused, ssh could not connect).
    case unreachable = "unreachable"
    /// The probe ran to its end and failed (a non-zero exit).
    case failed = "failed"
    /// It answered, but not what the check expects.
    case wrongOutput = "wrong output"
    /// Stopped by the deadline before it finished: it says nothing about the node.
    case cutOff = "timed out"
  }

  var kind: Kind
  var what: String
  /// The first lines of what the probe printed, made printable (empty: it printed nothing).
  var firstLines: String

  init(_ kind: Kind, _ what: String, output: String = "") {
    self.kind = kind
    self.what = what
    self.firstLines = Self.firstLines(of: output)
  }

  var description: String { firstLines.isEmpty ? what : "\(what): \(firstLines)" }

  /// A miss on this side, not the node's: nothing to connect with yet (no pinned host key on this
  /// machine, no address), or ssh failing before it reached the node (its key file, its
  /// configuration). A node that refuses, resets or does not answer a connection is not this.
  var saysNothingAboutTheNode: Bool {
    switch kind {
    case .waiting: return true
    case .unreachable:
      let nodeSide = ["Connection refused", "No route to host", "timed out", "Connection reset", "Connection closed", "Network is unreachable", "Permission denied"]
      return !nodeSide.contains { firstLines.contains($0) || what.contains($0) }
    default: return false
    }
  }

  /// Up to three non-empty lines, each at most 160 characters, joined with " | ".
  static func firstLines(of output: String) -> String {
    output.split(whereSeparator: \.isNewline).lazy.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.prefix(3)
      .map { Terminal.printable(String($0.prefix(160))) }.joined(separator: " | ")
  }
}

/// Every miss of one check: how many of each kind, the last completed probe and the last one.
struct MissTally: Sendable {
  private(set) var counts: [ProbeMiss.Kind: Int] = [:]
  private(set) var probes = 0
  /// The last probe that ran to its end (anything but `cutOff`).
  private(set) var lastCompleted: ProbeMiss?
  private(set) var last: ProbeMiss?

  mutating func add(_ miss: ProbeMiss) {
    probes += 1
    counts[miss.kind, default: 0] += 1
    last = miss
    if miss.kind != .cutOff { lastCompleted = miss }
  }

  /// "35 probes: 34 failed, 1 timed out".
  var summary: String {
    let parts = ProbeMiss.Kind.allCases.compactMap { kind in counts[kind].map { "\($0) \(kind.rawValue)" } }
    return "\(probes) probe\(probes == 1 ? "" : "s")" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
  }

  /// The most informative probe: the last completed one, with the last one beside it when the
  /// deadline cut that one off.
  var reason: String {
    guard let last else { return "not checked" }
    guard let lastCompleted, lastCompleted != last else { return last.description }
    return "\(lastCompleted.description) (the last probe was cut off by the deadline: \(last.description))"
  }
}
