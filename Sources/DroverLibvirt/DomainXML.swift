import DroverBasics
import DroverModel

/// Renders the libvirt domain XML for a node.
///
/// Shape checked on this machine class: TCG (`type='qemu'`; `kvm` with a host-model CPU where
/// the plan chose KVM — never here, the CPU has no vmx),
/// direct kernel boot, a virtio overlay disk from a storage pool volume, serial console to a
/// file, ACPI so `shutdown` works, and every lifecycle event ending in `destroy`.
public enum DomainXML {
  /// The domain with its UUID chosen here, so its ownership record can be sealed to it before
  /// the domain exists (one define, no second metadata write).
  /// - Parameter bootsNodes: the host's capability: `qemu` domains, or `test` ones for libvirt's test driver.
  public static func render(_ node: NodeDefinition, bootsNodes: Bool, uuid: String, key: RecordKey, host: String) -> String {
    render(node, bootsNodes: bootsNodes, uuid: uuid, record: OwnershipMetadata.render(node.ownership, key: key, binding: .init(uuid: uuid, host: host)))
  }

  /// The domain as a Drover from before keyed records defined it (a format-1 record, no UUID
  /// chosen): for tests and benchmarks that stand in for what an older Drover left on a host.
  public static func renderLegacy(_ node: NodeDefinition, bootsNodes: Bool) -> String {
    render(node, bootsNodes: bootsNodes, uuid: nil, record: OwnershipMetadata.renderLegacy(node.ownership))
  }

  static func render(_ node: NodeDefinition, bootsNodes: Bool, uuid: String?, record: String) -> String {
    let o = node.ownership
    let type = bootsNodes ? (node.accel == .kvm ? "kvm" : "qemu") : "test"
    var x = "<domain type='\(type)'>\n"
    x += "  <name>\(XMLText.text(o.node))</name>\n"
    if let uuid { x += "  <uuid>\(XMLText.text(uuid))</uuid>\n" }
    x += "  <title>\(XMLText.text("drover node \(o.node) of pool \(o.pool)"))</title>\n"
    x += "  <metadata>\n    \(record)\n  </metadata>\n"
    x += "  <memory unit='KiB'>\(o.memoryMiB * 1024)</memory>\n"
    x += "  <vcpu>\(o.vcpu)</vcpu>\n"
    x += "  <os>\n    <type arch='x86_64'>hvm</type>\n"
    if let boot = node.boot {
      if let kernel = boot.kernel { x += "    <kernel>\(XMLText.text(kernel))</kernel>\n" }
      if let initrd = boot.initrd { x += "    <initrd>\(XMLText.text(initrd))</initrd>\n" }
      if let cmdline = boot.cmdline { x += "    <cmdline>\(XMLText.text(cmdline))</cmdline>\n" }
    }
    x += "  </os>\n"
    x += "  <features><acpi/></features>\n"
    // KVM runs the host's CPU model (migratable between like hosts), never TCG's default.
    if type == "kvm" { x += "  <cpu mode='host-model'/>\n" }
    // A guest reboot restarts the node in place (its disk, its name): a node that reboots is not
    // a node lost. Nodes defined before keep `destroy` until they are replaced for another reason
    // (heal's `start` rung brings such a node back on its own disk).
    x += "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n"
    x += "  <devices>\n"
    if let boot = node.boot {
      x += "    <disk type='volume' device='disk'>\n"
      x += "      <driver name='qemu' type='qcow2'/>\n"
      x += "      <source pool='\(XMLText.attribute(boot.storagePool))' volume='\(XMLText.attribute(boot.volume))'/>\n"
      x += "      <target dev='vda' bus='virtio'/>\n    </disk>\n"
      if let seed = boot.seedVolume {
        x += "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='raw'/>\n"
        x += "      <source pool='\(XMLText.attribute(boot.storagePool))' volume='\(XMLText.attribute(seed))'/>\n"
        x += "      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n    </disk>\n"
      }
      if let log = boot.consoleLog, boot.consoleOnHost {
        // A pty (so `virsh console` stays free for people) logged to a file of the host's pool.
        x += "    <serial type='pty'>\n      <log file='\(XMLText.attribute(log))' append='off'/>\n"
        x += "      <target port='0'/>\n    </serial>\n"
      } else if let log = boot.consoleLog {
        x += "    <serial type='file'>\n      <source path='\(XMLText.attribute(log))'/>\n"
        x += "      <target port='0'/>\n    </serial>\n"
      }
    }
    if let network = o.network {
      let mac = NodeMAC.address(project: o.project, pool: o.pool, index: o.index, generation: o.generation)
      x += "    <interface type='network'>\n      <mac address='\(mac)'/>\n      <source network='\(XMLText.attribute(network))'/>\n"
      x += "      <model type='virtio'/>\n    </interface>\n"
    }
    if type != "test" {
      // A node with a seed runs a real OS: a channel for its guest agent (qemu-guest-agent),
      // which `status -o wide` asks for addresses no lease shows.
      if node.boot?.seedVolume != nil {
        x += "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n"
      }
      x += "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n"
    }
    x += "  </devices>\n</domain>\n"
    return x
  }
}
