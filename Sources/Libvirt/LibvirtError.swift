internal import CLibvirt

/// An error reported by libvirt: its code, the subsystem it came from, and its message.
///
/// Captured from `virGetLastError()` in the same synchronous call that failed (libvirt keeps the
/// last error per thread), so no other call can overwrite it first.
public struct LibvirtError: Error, Sendable, Hashable, CustomStringConvertible {
  /// libvirt's `virErrorNumber`; the named constants below are the ones Drover branches on.
  public struct Code: RawRepresentable, Sendable, Hashable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The corresponding C constant is `VIR_ERR_INTERNAL_ERROR`.
    public static let internalError = Code(rawValue: 1)
    /// The corresponding C constant is `VIR_ERR_NO_CONNECT`.
    public static let noConnect = Code(rawValue: 5)
    /// The corresponding C constant is `VIR_ERR_NO_SUPPORT` (the driver lacks the call).
    public static let noSupport = Code(rawValue: 3)
    /// The corresponding C constant is `VIR_ERR_OPERATION_DENIED` (e.g. a write on a read-only connection).
    public static let operationDenied = Code(rawValue: 29)
    /// The corresponding C constant is `VIR_ERR_SYSTEM_ERROR`.
    public static let systemError = Code(rawValue: 38)
    /// The corresponding C constant is `VIR_ERR_RPC`.
    public static let rpc = Code(rawValue: 39)
    /// The corresponding C constant is `VIR_ERR_NO_DOMAIN`: the only code that means "gone".
    public static let noDomain = Code(rawValue: 42)
    /// The corresponding C constant is `VIR_ERR_AUTH_FAILED`.
    public static let authFailed = Code(rawValue: 45)
    /// The corresponding C constant is `VIR_ERR_NO_STORAGE_POOL`.
    public static let noStoragePool = Code(rawValue: 49)
    /// The corresponding C constant is `VIR_ERR_NO_STORAGE_VOL`.
    public static let noStorageVolume = Code(rawValue: 50)
    /// The corresponding C constant is `VIR_ERR_OPERATION_INVALID`.
    public static let operationInvalid = Code(rawValue: 55)
    /// The corresponding C constant is `VIR_ERR_NO_DOMAIN_METADATA`.
    public static let noDomainMetadata = Code(rawValue: 80)
    /// Not a libvirt code: Drover gave up waiting for the call (see `Connection.open`).
    public static let timedOut = Code(rawValue: -1000)
  }

  public var code: Code
  /// libvirt's `virErrorDomain` (the subsystem), e.g. 10 for the domain config parser.
  public var origin: Int32
  public var message: String

  public init(code: Code, origin: Int32 = 0, message: String) {
    self.code = code
    self.origin = origin
    self.message = message
  }

  public var description: String { message }

  /// Reads and clears this thread's last libvirt error.
  ///
  /// `fallback` is an autoclosure on purpose: every libvirt API call (even `virDomainGetName`)
  /// resets the last error on entry, so nothing may call libvirt between the failing call and
  /// this read — including the code that builds the message.
  static func last(fallback: @autoclosure () -> String) -> LibvirtError {
    guard let error = virGetLastError() else {
      return LibvirtError(code: Code(rawValue: 1), message: fallback())
    }
    let result = LibvirtError(
      code: Code(rawValue: error.pointee.code), origin: error.pointee.domain,
      message: error.pointee.message.map { String(cString: $0) } ?? fallback())
    virResetLastError()
    return result
  }
}
