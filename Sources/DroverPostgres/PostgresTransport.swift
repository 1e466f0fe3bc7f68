import DroverBasics
import Foundation
import PostgresNIO
import Synchronization

/// How this machine reaches one state database: what the machine's configuration says for its
/// `host:port` (#40). A project names the server; whether to trust it is the machine's call.
public struct PostgresTrust: Sendable, Hashable {
  /// The CA (PEM file) the server's certificate must chain to; the URL's host must be a name
  /// (or an IP address) the certificate holds — `sslmode=verify-full`.
  public var caFile: String?
  /// Plaintext allowed (a loopback test server). The password still never leaves in a form the
  /// server can read: only SCRAM is answered (`PlaintextAuthGuard`).
  public var insecure: Bool

  public init(caFile: String? = nil, insecure: Bool = false) {
    self.caFile = caFile
    self.insecure = insecure
  }
}

/// Opens the session's transport: verified TLS, or guarded plaintext where the machine allows it.
/// Never plaintext by default, and never a password in clear text.
enum PostgresTransport {
  /// How the session is secured.
  enum Mode {
    /// Verified TLS with this context.
    case tls(NIOSSLContext)
    /// Plaintext, the authentication guarded.
    case plaintext(PlaintextAuthGuard.Outcome)
  }

  /// The one decision of how to reach `target`, from the machine's `trust` and the URL's
  /// `sslmode`; a located refusal before any byte is sent.
  static func mode(_ target: PostgresURL, trust: PostgresTrust) throws -> Mode {
    // What the URL expects must be what the machine allows: never quietly another transport.
    if target.sslmode == "disable", !trust.insecure {
      throw Diagnostic.error(
        "state.tls-required", "state.url asks for \(target.display) without TLS (sslmode=disable), and this machine's configuration does not mark it insecure",
        subject: "state", hint: "use verified TLS (the server's CA in the machine configuration's state entry for \(target.server)), or mark a loopback test server insecure: true there")
    }
    if target.sslmode == "verify-full", trust.caFile == nil {
      throw Diagnostic.error(
        "state.tls-required", "state.url asks for verified TLS to \(target.display), and this machine's configuration names no CA for \(target.server)",
        subject: "state", hint: "add state: {\"\(target.server)\": {ca: /etc/drover/db-ca.pem}} to the machine configuration")
    }
    if let ca = trust.caFile {
      var tls = TLSConfiguration.makeClientConfiguration()
      tls.certificateVerification = .fullVerification
      tls.trustRoots = .file(ca)
      tls.minimumTLSVersion = .tlsv12
      do { return .tls(try NIOSSLContext(configuration: tls)) } catch {
        throw Diagnostic.error(
          "state.tls", "cannot use the CA \(ca) for the state database \(target.display): \(error)", subject: "state",
          hint: "the machine configuration's state entry for \(target.server) names a PEM file of the CA that signed the server's certificate")
      }
    }
    guard trust.insecure else {
      throw Diagnostic.error(
        "state.tls-required",
        "the state database \(target.display) has no CA in this machine's configuration; Drover does not speak to it without verified TLS",
        subject: "state",
        hint: "add to the machine configuration: state: {\"\(target.server)\": {ca: /etc/drover/db-ca.pem}} (or insecure: true for a loopback test server)")
    }
    return .plaintext(PlaintextAuthGuard.Outcome())
  }

  /// A TCP channel to `target` (with the guard first in its pipeline on plaintext), within
  /// `timeout`. Drover opens it itself, so it can read the TLS peer's certificate afterwards.
  static func channel(_ target: PostgresURL, mode: Mode, on loop: any EventLoop, timeout: Double) -> EventLoopFuture<any Channel> {
    ClientBootstrap(group: loop)
      .connectTimeout(.milliseconds(Int64(min(max(timeout, 0.1), 3600) * 1000)))
      .channelInitializer { channel in
        guard case .plaintext(let outcome) = mode else { return channel.eventLoop.makeSucceededVoidFuture() }
        return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(PlaintextAuthGuard(outcome: outcome)) }
      }
      .connect(host: target.host, port: target.port)
  }

  /// The session's configuration on `channel`.
  static func configuration(_ target: PostgresURL, mode: Mode, channel: any Channel, password: String?) -> PostgresConnection.Configuration {
    switch mode {
    case .plaintext:
      return PostgresConnection.Configuration(establishedChannel: channel, username: target.user, password: password, database: target.database)
    case .tls(let context):
      var configuration = PostgresConnection.Configuration(
        establishedChannel: channel, tls: .require(context), username: target.user, password: password, database: target.database)
      // The name for SNI and the TLS library's own check (an IP address is never sent as SNI).
      if !PostgresURL.isIPAddress(target.host) { configuration.options.tlsServerName = target.host }
      return configuration
    }
  }

  /// verify-full as libpq means it: the certificate must name the host the URL names. The TLS
  /// library also accepts a certificate whose IP address matches the socket's peer when a host
  /// *name* was asked for, so a certificate issued by the same CA for an address could stand in
  /// for a name; checked here, before any query.
  static func checkName(_ target: PostgresURL, channel: any Channel, seconds: Double) throws {
    let certificate = try PostgresState.wait(
      channel.eventLoop.submit { try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate },
      seconds: seconds, what: "reading the state database's certificate")
    guard let certificate, certificateNames(certificate, host: target.host) else {
      throw Diagnostic.error(
        "state.tls-name", "the state database's certificate does not name \(target.host) (it was reached at \(target.display)); nothing was sent",
        subject: "state", hint: "state.url must name the server as its certificate does (a subjectAltName DNS name or IP address)")
    }
  }

  /// Whether `certificate` holds `host`: an IP address literal as an IP subjectAltName, a name as
  /// a DNS one (exactly, ignoring case, or under a left-most `*.` wildcard of one label).
  static func certificateNames(_ certificate: NIOSSLCertificate, host: String) -> Bool {
    let wanted = host.lowercased()
    let address = PostgresURL.addressBytes(host)
    for name in certificate._subjectAlternativeNames() {
      let bytes = name.contents.withUnsafeBufferPointer { Array($0) }
      if let address {
        if name.nameType == .ipAddress, bytes == address { return true }
        continue
      }
      guard name.nameType == .dnsName else { continue }
      let dns = String(decoding: bytes, as: UTF8.self).lowercased()
      if dns == wanted { return true }
      if dns.hasPrefix("*."), let dot = wanted.firstIndex(of: "."), wanted[wanted.index(after: dot)...] == dns.dropFirst(2), wanted[..<dot].count > 0 {
        return true
      }
    }
    return false
  }
}

/// Stands between the socket and PostgreSQL's protocol on a plaintext session, until the session
/// is authenticated: a server that asks for the password in clear text (`AuthenticationCleartext
/// Password`) or as MD5 (a salted hash anyone on the path can attack offline) is cut off before
/// postgres-nio — which would answer either itself — ever sees the request. SCRAM proves the
/// password without sending it, so it passes; so does a server that asks for nothing.
final class PlaintextAuthGuard: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  /// What the guard saw, read after the connection attempt ends.
  final class Outcome: Sendable {
    let refused = Mutex<String?>(nil)
  }

  let outcome: Outcome
  /// Bytes not yet judged (a message arrives in pieces).
  private var pending: ByteBuffer?
  private var authenticated = false

  init(outcome: Outcome) { self.outcome = outcome }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if authenticated {
      context.fireChannelRead(data)
      return
    }
    var incoming = unwrapInboundIn(data)
    if pending == nil { pending = incoming } else { pending?.writeBuffer(&incoming) }
    // Judge every complete message (a type byte, then a 4-byte length counting itself).
    while var buffer = pending, buffer.readableBytes >= 5,
      let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
      let length = buffer.getInteger(at: buffer.readerIndex + 1, as: Int32.self)
    {
      guard length >= 4, length <= 1 << 20 else { return refuse(context, "sent a malformed message before authentication") }
      guard buffer.readableBytes >= 1 + Int(length) else { break }
      if type == UInt8(ascii: "R"), length >= 8, let code = buffer.getInteger(at: buffer.readerIndex + 5, as: Int32.self) {
        switch code {
        case 3: return refuse(context, "asked for the password in clear text")
        case 5: return refuse(context, "asked for the password as MD5")
        case 0: authenticated = true
        default: break
        }
      }
      guard let message = buffer.readSlice(length: 1 + Int(length)) else { break }
      pending = buffer
      context.fireChannelRead(wrapInboundOut(message))
      if authenticated {
        if let rest = pending, rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        pending = nil
        return
      }
    }
  }

  private func refuse(_ context: ChannelHandlerContext, _ why: String) {
    outcome.refused.withLock { $0 = $0 ?? why }
    pending = nil
    context.close(promise: nil)
  }
}
