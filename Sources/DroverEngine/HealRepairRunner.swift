import DroverBasics
import DroverModel
import DroverRollout
import Foundation

/// Runs the repairs a heal pass decided on the nodes' own disks (resume, start, reset), exactly
/// those, one libvirt call each, and reports what happened to each. Owns: acting. Must not:
/// decide (`decideHeal` did, and the ladder's record of the attempt was written before this runs).
public enum HealRepairRunner {
  public struct Outcome: Sendable, Hashable {
    public var repair: NodeRepair
    /// nil: done; else why it failed.
    public var failure: String?
  }

  public static func run(_ repairs: [NodeRepair], backends: [String: any HostBackend], fence: Fence = .none) -> [Outcome] {
    repairs.map { repair in
      guard let backend = backends[repair.host] else {
        return Outcome(repair: repair, failure: "host \(repair.host) is not connected")
      }
      do {
        // A pass that lost its locks (another watch leads now) repairs nothing more (#41).
        try fence.check("\(repair.rung.rawValue) of \(repair.node)")
        switch repair.rung {
        case .resume: try backend.resume(node: repair.node, uuid: repair.uuid)
        case .start: try backend.start(node: repair.node, uuid: repair.uuid)
        case .reset: try backend.reset(node: repair.node, uuid: repair.uuid)
        case .replace: return Outcome(repair: repair, failure: "a replacement runs as a heal rollout, never here")
        }
        return Outcome(repair: repair, failure: nil)
      } catch {
        let message = Diagnostic.line(of: error)
        return Outcome(repair: repair, failure: message)
      }
    }
  }
}
