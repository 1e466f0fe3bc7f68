import DroverEngine
import DroverRollout
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Prometheus's HTTP API (`GET /api/v1/query`), one instant query at a time, on a shared
/// event loop. Every query is bounded by `timeout` (connect, send and answer together): a
/// backend that hangs answers `.error` when it is over, as one that is down does at once.
public final class PrometheusClient: MetricsQuerying, @unchecked Sendable {
  public let endpoint: String
  let scheme: String
  let host: String
  let port: Int
  let basePath: String
  let timeout: TimeAmount
  let tls: NIOSSLContext?

  /// - Parameters:
  ///   - url: `http(s)://HOST[:PORT][/PATH]` (the project's `analysis.prometheus`).
  ///   - caFile: the CA an `https` server's certificate must chain to (the machine's
  ///     configuration); nil: the system's.
  public init(url: String, caFile: String? = nil, timeout: Double = 10) throws {
    guard let c = URLComponents(string: url), let scheme = c.scheme, ["http", "https"].contains(scheme), let host = c.host, !host.isEmpty else {
      throw PrometheusError(message: "'\(url)' is not an http(s) URL")
    }
    self.endpoint = url
    self.scheme = scheme
    self.host = host
    self.port = c.port ?? (scheme == "https" ? 443 : 80)
    self.basePath = c.percentEncodedPath.hasSuffix("/") ? String(c.percentEncodedPath.dropLast()) : c.percentEncodedPath
    self.timeout = .milliseconds(Int64(timeout * 1000))
    if scheme == "https" {
      var config = TLSConfiguration.makeClientConfiguration()
      if let caFile { config.trustRoots = .file(caFile) }
      tls = try NIOSSLContext(configuration: config)
    } else {
      tls = nil
    }
  }

  /// `host:port` of `url` (the default port of its scheme filled in; an IPv6 host in brackets),
  /// as the machine's configuration keys a metrics server — the shape `PostgresURL.server` gives
  /// a state server.
  public static func server(of url: String) -> String? {
    guard let c = URLComponents(string: url), let written = c.host, !written.isEmpty else { return nil }
    let host = written.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    let port = c.port ?? (c.scheme == "https" ? 443 : 80)
    return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }

  public func query(_ promql: String) -> QueryAnswer {
    // RFC 3986's unreserved characters only (ASCII): everything else is percent-encoded.
    let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    let encoded = promql.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    let path = "\(basePath)/api/v1/query?query=\(encoded)"
    do {
      let (status, body) = try get(path)
      return PrometheusAnswer.parse(status: status, body: body)
    } catch {
      return .error(Self.describe(error))
    }
  }

  static func describe(_ error: Error) -> String {
    if let e = error as? PrometheusError { return e.message }
    if let e = error as? ChannelError, case .connectTimeout = e { return "connecting timed out" }
    if let e = error as? IOError { return "cannot connect: \(e.description)" }
    return "\(error)"
  }

  /// One GET on a new connection (a query every few seconds needs no pool), answered within
  /// `timeout` or abandoned: the channel is closed and the error says so.
  func get(_ path: String) throws -> (Int, [UInt8]) {
    let group = MultiThreadedEventLoopGroup.singleton
    let loop = group.next()
    let done = loop.makePromise(of: (Int, [UInt8]).self)
    let host = self.host, tls = self.tls
    let bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(timeout)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls {
            // An IP address is checked against the certificate's IP names; SNI carries only names.
            let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : host))
          }
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          try channel.pipeline.syncOperations.addHandler(AnswerCollector(done: done))
        }
      }
    let connected = bootstrap.connect(host: host, port: port)
    let timer = loop.scheduleTask(in: timeout) {
      done.fail(PrometheusError(message: "no answer within \(self.timeout.nanoseconds / 1_000_000_000)s"))
    }
    connected.whenFailure { done.fail($0) }
    connected.whenSuccess { channel in
      var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
      head.headers.add(name: "Host", value: host)
      head.headers.add(name: "Accept", value: "application/json")
      head.headers.add(name: "Connection", value: "close")
      channel.write(HTTPClientRequestPart.head(head), promise: nil)
      channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
      done.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
    defer { timer.cancel() }
    return try done.futureResult.wait()
  }
}

struct PrometheusError: Error { var message: String }

/// Collects one response: its status and at most 16 MiB of body.
final class AnswerCollector: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = HTTPClientResponsePart
  static let limit = 16 << 20
  let done: EventLoopPromise<(Int, [UInt8])>
  var status = 0
  var body: [UInt8] = []

  init(done: EventLoopPromise<(Int, [UInt8])>) { self.done = done }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head): status = Int(head.status.code)
    case .body(var buffer):
      guard body.count + buffer.readableBytes <= Self.limit else {
        done.fail(PrometheusError(message: "the answer is larger than 16 MiB"))
        context.close(promise: nil)
        return
      }
      body += buffer.readBytes(length: buffer.readableBytes) ?? []
    case .end: done.succeed((status, body))
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: Error) {
    done.fail(error)
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    done.fail(PrometheusError(message: "the connection closed before the answer ended"))
  }
}
