/// A scheduler state someone other than Drover set on a node before its rollout (#42): Slurm's
/// DRAIN, DOWN or FAIL, with the operator's reason. The rollout journals it when it cordons the
/// node, never resumes that node, and gives the same state and reason to its replacement, so an
/// operator's "disk check" outlives the VM it was set on (and a crash: the fold keeps it).
public struct OperatorHold: Sendable, Hashable, Codable {
  /// The state to put back (`DRAIN`, `DOWN`, `FAIL`); nil: only a reason was set.
  public var state: String?
  public var reason: String?

  public init(state: String?, reason: String?) {
    self.state = state
    self.reason = reason
  }

  /// The journal step whose detail holds it.
  public static let journalStep = "operator-hold"

  /// `STATE: reason` (`-` for no state): what the journal's detail says, readable in `rollout show`.
  public var journalText: String { (state ?? "-") + (reason.map { ": \($0)" } ?? "") }

  /// The hold a journal detail names; nil for a detail that is not one.
  public init?(journalText text: String) {
    let head = text.prefix { $0 != ":" }
    let word = String(head)
    guard word == "-" || (!word.isEmpty && word.allSatisfy { $0.isUppercase }) else { return nil }
    let rest = text.dropFirst(head.count)
    self.state = word == "-" ? nil : word
    self.reason = rest.hasPrefix(": ") ? String(rest.dropFirst(2)) : nil
  }
}
