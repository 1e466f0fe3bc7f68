import DroverBasics
import DroverModel
import DroverPlan

/// Runs `drover adopt`: decides (`Adoption.decide`), then writes the sealed record on the host,
/// which checks again that the domain is the one decided (its name and UUID) and drops the host
/// keys sealed there; this machine's pins of the domain go too, so the adopted node's keys are
/// learned again from its console (a node rebuilt outside Drover has new ones).
public enum Adopter {
  public static func adopt(
    name: String, host: String?, pools: [PoolSpec], observed: ObservedWorld, project: String, backends: [String: any HostBackend],
    pins: NodeSSHAccess? = nil, fence: Fence = .none
  ) -> Result<Adoption.Decision, Diagnostic> {
    let decision: Adoption.Decision
    switch Adoption.decide(name: name, host: host, pools: pools, observed: observed, project: project) {
    case .failure(let problem): return .failure(problem)
    case .success(let d): decision = d
    }
    guard let backend = backends[decision.host] else {
      return .failure(.error("adopt.host", "host \(decision.host) is not connected", subject: "host \(decision.host)"))
    }
    do {
      try fence.check("adopting \(name)")
      try backend.adopt(node: name, uuid: decision.uuid, as: decision.record)
    } catch {
      return .failure(Diagnostic.first(of: error, code: "adopt.failed", subject: "domain \(name)"))
    }
    // Every pin of the domain, whatever name it had (the record is adopted already: a pins file
    // that cannot be written now only keeps a cache the next check refreshes from the record).
    try? pins?.forget(uuid: decision.uuid)
    return .success(decision)
  }
}
