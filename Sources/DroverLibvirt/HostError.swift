import DroverBasics
import Libvirt

/// A libvirt failure with the host and node it concerned, rendered once at the CLI edge.
public struct HostError: DiagnosticConvertible, Sendable {
  public var uri: String
  public var node: String?
  public var operation: String
  public var libvirt: LibvirtError?
  public var reason: String?

  public init(uri: String, node: String? = nil, operation: String, libvirt: LibvirtError? = nil, reason: String? = nil) {
    self.uri = uri
    self.node = node
    self.operation = operation
    self.libvirt = libvirt
    self.reason = reason
  }

  public var isUnreachable: Bool {
    guard let code = libvirt?.code else { return false }
    return code == .noConnect || code == .timedOut || code == .rpc || code == .systemError || code == .authFailed
  }

  public var message: String {
    var m = operation
    if let libvirt { m += ": \(libvirt.message)" }
    if let reason { m += ": \(reason)" }
    return m
  }

  public var diagnostics: [Diagnostic] {
    let subject = node.map { "node \($0) on \(uri)" } ?? "host \(uri)"
    let code = isUnreachable ? "libvirt.unreachable" : (libvirt == nil ? "apply.refused" : "libvirt.call")
    let hint: String? =
      isUnreachable
      ? "check that libvirtd runs on the host and that the URI is right (virsh -c \(uri) uri)" : nil
    return [Diagnostic.error(code, message, subject: subject, hint: hint)]
  }
}
