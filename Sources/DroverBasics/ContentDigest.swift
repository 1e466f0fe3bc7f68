import Crypto
import Foundation

/// A SHA-256 digest as lower-case hex: the identity of specs, images and world fingerprints.
public struct ContentDigest: Sendable, Hashable, Codable, CustomStringConvertible {
  public let hex: String

  public init(hex: String) { self.hex = hex }

  public static func of(_ bytes: some DataProtocol) -> ContentDigest {
    ContentDigest(hex: SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
  }

  public static func of(_ text: String) -> ContentDigest { of(Array(text.utf8)) }

  /// The first 12 hex digits, for names and human output.
  public var short: String { String(hex.prefix(12)) }
  public var description: String { "sha256:" + hex }
}

/// Incremental SHA-256 for large files.
public struct StreamingDigest {
  private var hasher = SHA256()
  public init() {}
  public mutating func update(_ data: Data) { hasher.update(data: data) }
  public mutating func finalize() -> String { hasher.finalize().map { String(format: "%02x", $0) }.joined() }
}
