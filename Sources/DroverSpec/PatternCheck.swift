import DroverBasics

/// The validate-time check of a pool's regular expressions: what `BoundedPattern` (the engine
/// that matches them over guest output in linear time) refuses is refused here, so a pool that
/// validates never fails a pass for its pattern.
enum PatternCheck {
  static func refusal(_ pattern: String) -> String? {
    do {
      _ = try BoundedPattern(pattern)
      return nil
    } catch {
      return error.description
    }
  }

  static let hint =
    "patterns are matched in linear time: literals, '.', classes, groups, '|', quantifiers and anchors; no backreferences or lookaround"
}
