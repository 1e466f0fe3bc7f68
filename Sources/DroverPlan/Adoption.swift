import DroverBasics
import DroverModel

/// What `drover adopt` would write, decided from the observed world: the one way a person takes
/// over, on purpose, a domain whose record Drover refuses (a clone, a copy, an edited record).
///
/// The domain must be named as a node of a declared pool (`web-2`) and sit on one of its hosts;
/// no trusted node may already be that node; the domain must carry a record of this project
/// (Drover never adopts a domain it did not create). The new record keeps the old one's image,
/// generation and disk, and takes its pool and index from the name. Pure.
public enum Adoption {
  public struct Decision: Sendable, Hashable {
    public var host: String
    public var uuid: String
    public var record: NodeOwnership
  }

  public static func decide(name: String, host: String?, pools: [PoolSpec], observed: ObservedWorld, project: String) -> Result<Decision, Diagnostic> {
    func refuse(_ message: String, hint: String) -> Result<Decision, Diagnostic> {
      .failure(.error("adopt.refused", message, subject: "domain \(name)", hint: hint))
    }
    let candidates = observed.hosts.sorted { $0.key < $1.key }.flatMap { uri, h in
      h.domains.filter { $0.name == name }.map { (uri, $0) }
    }.filter { host == nil || $0.0 == host }
    guard let (uri, domain) = candidates.first else {
      return refuse("no domain named \(name) on \(host ?? "the project's hosts")", hint: "check the name with virsh list --all")
    }
    guard candidates.count == 1 else {
      return refuse("domains named \(name) exist on \(candidates.map(\.0).joined(separator: " and "))", hint: "say which with --host")
    }
    guard let old = domain.ownership, old.project == project else {
      return refuse(
        "domain \(name) on \(uri) carries no record of project \(project)", hint: "Drover adopts only domains it created (or copies of them)")
    }
    if domain.trust == .verified {
      return refuse("domain \(name) on \(uri) is already a node of project \(project)", hint: "nothing to adopt")
    }
    guard let dash = name.lastIndex(of: "-"), let index = Int(name[name.index(after: dash)...]), index > 0,
      NodeName.of(pool: String(name[..<dash]), index: index) == name, let pool = pools.first(where: { $0.name == String(name[..<dash]) })
    else {
      return refuse(
        "\(name) is not named as a node of a pool in pools/ (pool-N)", hint: "rename the domain (virsh domrename) to the node it should be, or remove it")
    }
    guard pool.hosts.contains(uri) else {
      return refuse("\(uri) is not one of pool \(pool.name)'s hosts", hint: "add it to the pool's hosts first")
    }
    let trusted = TrustedRecords(observed, project: project, keyHeld: true)
    if let holder = trusted.owned.first(where: { $0.ownership.pool == pool.name && $0.ownership.index == index && $0.domain.uuid != domain.uuid }) {
      return refuse(
        "node \(name) already exists: domain \(holder.domain.name) (UUID \(holder.domain.uuid)) on \(holder.host)",
        hint: "remove one of the two first; Drover will not choose")
    }
    var record = old
    record.node = name
    record.pool = pool.name
    record.index = index
    record.rollout = nil  // a mark copied from elsewhere says nothing about this domain
    return .success(Decision(host: uri, uuid: domain.uuid, record: record))
  }
}
