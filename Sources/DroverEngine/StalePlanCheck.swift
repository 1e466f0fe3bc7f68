import DroverBasics
import DroverPlan

/// Refuses a saved plan whose world or specs changed since it was made.
///
/// Stronger than Terraform's serial check: the fingerprint covers every domain on every host the
/// plan touches (UUIDs, state, metadata digests), so any out-of-band change is named.
public enum StalePlanCheck {
  public static func check(saved: Plan, current: Plan) -> [Diagnostic] {
    var diagnostics: [Diagnostic] = []
    if saved.formatVersion != Plan.formatVersion {
      diagnostics.append(
        .error("plan.version", "the plan file has format \(saved.formatVersion); this Drover reads \(Plan.formatVersion)"))
    }
    if saved.specDigest != current.specDigest {
      diagnostics.append(
        .error(
          "plan.stale", "the pool specs changed since the plan was saved",
          hint: "run drover plan --out again and review the new plan"))
    }
    let changes = current.world.differences(from: saved.world)
    if !changes.isEmpty {
      diagnostics.append(
        .error(
          "plan.stale", "the world changed since the plan was saved: " + changes.prefix(10).joined(separator: "; ")
            + (changes.count > 10 ? "; and \(changes.count - 10) more" : ""),
          hint: "run drover plan --out again and review the new plan"))
    }
    return diagnostics
  }
}
