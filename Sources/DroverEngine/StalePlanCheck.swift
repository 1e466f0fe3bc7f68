import DroverBasics
import DroverPlan
import DroverRollout

/// Refuses a saved plan whose world or specs changed since it was made.
///
/// Stronger than Terraform's serial check: the fingerprint covers every domain on every host the
/// plan touches (UUIDs, state, metadata digests), so any out-of-band change is named.
public enum StalePlanCheck {
  /// - Parameter heals: the project's heal rollouts (from the journals): a domain of the saved
  ///   plan's world that a heal replaced is named as such, not only as "recreated".
  public static func check(saved: Plan, current: Plan, heals: [RolloutState] = []) -> [Diagnostic] {
    var diagnostics: [Diagnostic] = []
    if saved.formatVersion != Plan.formatVersion {
      diagnostics.append(
        .error("plan.version", "the plan file has format \(saved.formatVersion); this Drover reads \(Plan.formatVersion)"))
    }
    if saved.project != current.project {
      diagnostics.append(
        .error(
          "plan.project", "the plan was made for project \(saved.project); this checkout is project \(current.project)",
          hint: "apply it from a checkout of project \(saved.project), or make a plan here: drover plan --out"))
    }
    let images = imageChanges(saved: saved.images, current: current.images)
    if !images.isEmpty {
      diagnostics.append(
        .error(
          "plan.stale-image", images.joined(separator: "; "),
          hint: "run drover plan --out again and review the new plan; to keep one build, pin it in the pool: image: name@sha256:<digest>"))
    }
    if saved.specDigest != current.specDigest {
      diagnostics.append(
        .error(
          "plan.stale", "the pool specs changed since the plan was saved",
          hint: "run drover plan --out again and review the new plan"))
    }
    let changes = healNotes(saved: saved, heals: heals) + current.world.differences(from: saved.world)
    if !changes.isEmpty {
      diagnostics.append(
        .error(
          "plan.stale", "the world changed since the plan was saved: " + changes.prefix(10).joined(separator: "; ")
            + (changes.count > 10 ? "; and \(changes.count - 10) more" : ""),
          hint: "run drover plan --out again and review the new plan"))
    }
    return diagnostics
  }

  /// One sentence per image whose digest is not what the saved plan was made with. Pure.
  public static func imageChanges(saved: [String: String], current: [String: String]) -> [String] {
    func short(_ digest: String) -> String { "sha256:" + digest.prefix(12) }
    return saved.keys.sorted().compactMap { reference in
      let was = saved[reference] ?? ""
      guard let now = current[reference], now != was else { return nil }
      if now.isEmpty { return "image \(reference) (\(short(was))) is not in this machine's image catalogue" }
      if was.isEmpty { return "image \(reference) was baked since the plan was saved (now \(short(now)))" }
      return "image \(reference) was rebaked since the plan was saved: \(short(was)) → \(short(now))"
    }
  }

  /// "node web-2 was replaced by heal heal-web-… (why)" for every node a heal replaced whose
  /// old domain (by UUID) the saved plan saw. Pure.
  public static func healNotes(saved: Plan, heals: [RolloutState]) -> [String] {
    let seen = Set(saved.world.hosts.values.flatMap { $0.values.compactMap { $0.split(separator: " ").first.map(String.init) } })
    var notes: [String] = []
    for heal in heals where heal.kind == .heal {
      for key in heal.schedule.joined() {
        guard let node = heal.nodes[key], seen.contains(node.oldUUID), heal.done.contains(key) || heal.touched.contains(key) else { continue }
        notes.append("node \(node.oldName) on \(node.host) was replaced by heal \(heal.id) (\(node.reason))")
      }
    }
    return notes
  }
}
