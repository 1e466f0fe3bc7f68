import DroverModel
import Foundation
import Testing

@testable import DroverPlan

/// #18: KVM where the host has it, TCG otherwise — decided from each host's capabilities and KVM
/// domain capabilities (this machine's, recorded here: it offers KVM domains but its CPU has no
/// vmx/svm), and a pin the host cannot meet is a plan error.
@Suite struct AccelerationTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/accel")
  static func read(_ name: String) throws -> String { try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8) }

  static func thisMachine() throws -> HostAcceleration {
    HostAcceleration.read(capabilities: try read("this-machine.capabilities.xml"), domainCapabilities: try read("this-machine.domcaps-kvm.xml"))
  }
  static func kvmHost() throws -> HostAcceleration {
    HostAcceleration.read(capabilities: try read("kvm-host.capabilities.xml"), domainCapabilities: try read("kvm-host.domcaps-kvm.xml"))
  }

  @Test func theHostsCPUDecidesNotLibvirtsKVMDomains() throws {
    let here = try Self.thisMachine()
    #expect(!here.kvm && here.reason == "no vmx/svm in the host CPU", "libvirt says <domain>kvm</domain> here, but a KVM guest would spin")
    let kvm = try Self.kvmHost()
    #expect(kvm.kvm && kvm.hostModel && kvm.reason == "KVM (vmx)")
    let refused = HostAcceleration.read(capabilities: try Self.read("kvm-host.capabilities.xml"), domainCapabilities: nil)
    #expect(!refused.kvm, "libvirt refusing KVM domain capabilities means no KVM")
  }

  @Test func pinsAndDefaults() throws {
    let here = try Self.thisMachine(), kvm = try Self.kvmHost()
    #expect(try here.choose(pin: nil).get() == .tcg && kvm.choose(pin: nil).get() == .kvm)
    #expect(try kvm.choose(pin: .tcg).get() == .tcg && here.choose(pin: .tcg).get() == .tcg)
    #expect((try? here.choose(pin: .kvm).get()) == nil)
  }

  @Test func thePlanSetsEachDomainsAcceleratorAndRefusesAnImpossiblePin() throws {
    var spec = PoolSpec(name: "web", hosts: ["qemu+ssh://kvm/system", "qemu:///system"], replicas: 2, image: ImageRef(parsing: "demo@v1")!)
    var fast = ObservedHost(uri: "qemu+ssh://kvm/system", domains: [])
    fast.acceleration = try Self.kvmHost()
    var slow = ObservedHost(uri: "qemu:///system", domains: [])
    slow.acceleration = try Self.thisMachine()
    let world = ObservedWorld(hosts: [fast.uri: fast, slow.uri: slow])
    let (plan, diagnostics) = makePlan(pools: [spec], observed: world)
    #expect(diagnostics.isEmpty, "\(diagnostics)")
    #expect(plan.actions.map { "\($0.node) \($0.after?.accel?.rawValue ?? "-")" } == ["web-1 kvm", "web-2 tcg"])
    #expect(plan.acceleration == ["qemu+ssh://kvm/system": "KVM (vmx)", "qemu:///system": "TCG (no vmx/svm in the host CPU)"])

    spec.accel = .kvm
    let (_, pinned) = makePlan(pools: [spec], observed: world)
    #expect(pinned.map(\.code) == ["plan.accel"] && pinned.first?.message.contains("host qemu:///system cannot run KVM: no vmx/svm") == true, "\(pinned)")
    spec.accel = .tcg
    let (tcg, none) = makePlan(pools: [spec], observed: world)
    #expect(none.isEmpty && tcg.actions.allSatisfy { $0.after?.accel == .tcg })
    #expect(tcg.acceleration["qemu+ssh://kvm/system"] == "TCG (accel: tcg)")
  }
}
