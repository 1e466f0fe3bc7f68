import DroverModel

/// A difference between the record Drover wrote on a node and the node's real persistent config:
/// a change made outside Drover (`virsh setvcpus --config`, an edited disk or NIC).
///
/// One definition for `plan` (which converges it) and `drift` (which reports it), so the two
/// can never disagree about what changed.
public enum OutsideChange: Sendable, Hashable {
  case vcpu(recorded: Int, observed: Int, maximum: Int)
  case memory(recordedMiB: UInt64, observedKiB: UInt64)
  case disk(recorded: String, observed: [String])
  case network(recorded: String?, observed: [String])

  /// `vcpu 2 → 1` style: what it is now, then what the record (and the spec) says.
  public var description: String {
    switch self {
    case .vcpu(let recorded, let observed, let maximum):
      return "vcpu \(observed)\(maximum != observed ? " (maximum \(maximum))" : "") → \(recorded)"
    case .memory(let recorded, let observed): return "memory \(observed / 1024)MiB → \(recorded)MiB"
    case .disk(let recorded, let observed):
      return "disk \(observed.isEmpty ? "none" : observed.joined(separator: ", ")) → \(recorded.isEmpty ? "none" : recorded)"
    case .network(let recorded, let observed):
      return "network \(observed.isEmpty ? "none" : observed.joined(separator: ", ")) → \(recorded ?? "none")"
    }
  }

  /// Whether fixing it needs a new domain (a disk or NIC swap) rather than new settings.
  public var needsReplacement: Bool {
    switch self {
    case .vcpu, .memory: return false
    case .disk, .network: return true
    }
  }
}

/// The node's persistent config compared with its ownership record; empty when it was not read.
public func outsideChanges(_ o: NodeOwnership, actual: DomainShape?) -> [OutsideChange] {
  guard let a = actual else { return [] }
  var changes: [OutsideChange] = []
  if a.vcpu != o.vcpu || a.maxVcpu != o.vcpu { changes.append(.vcpu(recorded: o.vcpu, observed: a.vcpu, maximum: a.maxVcpu)) }
  if a.memoryKiB != o.memoryMiB * 1024 { changes.append(.memory(recordedMiB: o.memoryMiB, observedKiB: a.memoryKiB)) }
  let expectedDisks = o.disk.isEmpty ? [] : [o.disk]
  // A node's cloud-init seed is its second disk: the name derived from the record, in the pool
  // of its overlay. Any other extra disk is an outside change.
  let seed = "\(o.diskPool)/" + OverlayName(of: o, kind: .seed).volume
  if a.disks.filter({ $0 != seed }) != expectedDisks { changes.append(.disk(recorded: o.disk, observed: a.disks)) }
  let expectedNetworks = o.network.map { [$0] } ?? []
  if a.networks != expectedNetworks { changes.append(.network(recorded: o.network, observed: a.networks)) }
  return changes
}
