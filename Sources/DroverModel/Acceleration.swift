/// How a node's CPU runs: KVM (hardware virtualisation) or TCG (QEMU's emulator).
public enum Accel: String, Sendable, Hashable, Codable, CaseIterable {
  case kvm, tcg
}

/// What a host can do, from its capabilities and its KVM domain capabilities.
///
/// Why two documents: libvirt's KVM domain capabilities only say that QEMU has KVM support and
/// `/dev/kvm` exists. On a machine whose CPU lacks hardware virtualisation (this project's own
/// CI machines: `/dev/kvm` present, no vmx/svm) they still say `<domain>kvm</domain>`, and a KVM
/// guest then spins without output. The host's CPU features (`vmx` for Intel, `svm` for AMD)
/// decide whether KVM is usable.
public struct HostAcceleration: Sendable, Hashable, Codable {
  public var kvm: Bool
  /// Whether a `host-model` CPU is offered for KVM domains.
  public var hostModel: Bool
  /// Why (for the plan): "KVM (vmx)", "no vmx/svm in the host CPU", …
  public var reason: String

  public init(kvm: Bool, hostModel: Bool, reason: String) {
    self.kvm = kvm
    self.hostModel = hostModel
    self.reason = reason
  }

  /// Reads the two documents; `domainCapabilities` is nil when libvirt refused KVM outright.
  public static func read(capabilities: String, domainCapabilities: String?) -> HostAcceleration {
    guard let domcaps = domainCapabilities, domcaps.contains("<domain>kvm</domain>") else {
      return HostAcceleration(kvm: false, hostModel: false, reason: "libvirt offers no KVM domains on this host")
    }
    let hostCPU = section(capabilities, from: "<host>", to: "</cpu>") ?? ""
    guard let flag = ["vmx", "svm"].first(where: { hostCPU.contains("<feature name='\($0)'/>") || hostCPU.contains("<feature name=\"\($0)\"/>") }) else {
      return HostAcceleration(kvm: false, hostModel: false, reason: "no vmx/svm in the host CPU")
    }
    let hostModel = (section(domcaps, from: "<mode name='host-model'", to: ">") ?? "").contains("supported='yes'")
    return HostAcceleration(kvm: true, hostModel: hostModel, reason: "KVM (\(flag))")
  }

  public static func section(_ text: String, from start: String, to end: String) -> Substring? {
    guard let a = text.range(of: start), let b = text.range(of: end, range: a.upperBound..<text.endIndex) else { return nil }
    return text[a.lowerBound..<b.upperBound]
  }

  /// The accelerator for a node: the pool's pin, or KVM where it is usable and TCG otherwise.
  /// - Returns: the choice, or why the pin cannot be met on this host.
  public func choose(pin: Accel?) -> Result<Accel, AccelUnavailable> {
    switch pin {
    case .kvm?: return kvm ? .success(.kvm) : .failure(AccelUnavailable(reason: reason))
    case .tcg?: return .success(.tcg)
    case nil: return .success(kvm ? .kvm : .tcg)
    }
  }
}

/// A pool pins `accel: kvm` on a host that cannot run it.
public struct AccelUnavailable: Error, Sendable, Hashable {
  public var reason: String
}
