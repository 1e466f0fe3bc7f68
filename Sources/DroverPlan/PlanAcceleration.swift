import DroverBasics
import DroverModel

/// How each domain the plan defines runs: the pool's `accel` pin, or KVM where the host can and
/// TCG elsewhere (`HostAcceleration.choose`). Pure: the host's capabilities were read with the
/// rest of the world.
///
/// A pin the host cannot meet is an error for every pool that pins it on such a host, whether
/// or not this plan defines a domain there: the spec asks for something the host cannot do.
/// - Returns: the actions with their accelerator set, the choice per host for the plan to show,
///   and the errors.
func chooseAcceleration(_ actions: [PlannedAction], pools: [String: PoolSpec], observed: ObservedWorld)
  -> ([PlannedAction], [String: String], [String: Accel], [Diagnostic])
{
  var result = actions
  var shown: [String: String] = [:]
  var chosen: [String: Accel] = [:]
  var diagnostics: [Diagnostic] = []
  for pool in pools.values.sorted(by: { $0.name < $1.name }) {
    for host in pool.hosts {
      guard let acc = observed.hosts[host]?.acceleration else { continue }
      switch acc.choose(pin: pool.accel) {
      case .success(let accel): chosen[Plan.acceleratorKey(pool: pool.name, host: host)] = accel
      case .failure(let why):
        diagnostics.append(
          .error(
            "plan.accel", "pool \(pool.name) pins accel: kvm, but host \(host) cannot run KVM: \(why.reason)", subject: "pool \(pool.name)",
            hint: "drop accel (KVM where a host can, TCG elsewhere), pin accel: tcg, or move the pool to hosts with KVM"))
      }
    }
  }
  for i in result.indices where result[i].after != nil {
    guard let acc = observed.hosts[result[i].host]?.acceleration,
      let accel = chosen[Plan.acceleratorKey(pool: result[i].pool, host: result[i].host)]
    else { continue }
    result[i].after?.accel = accel
    shown[result[i].host] = accel == .kvm ? acc.reason : "TCG (\(acc.kvm ? "accel: tcg" : acc.reason))"
  }
  return (result, shown, chosen, diagnostics)
}
