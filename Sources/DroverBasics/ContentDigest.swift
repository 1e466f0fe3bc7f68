import Crypto
import Foundation

/// A SHA-256 digest as lower-case hex: the identity of specs, images and world fingerprints.
public struct ContentDigest: Sendable, Hashable, Codable, CustomStringConvertible {
  public let hex: String

  public init(hex: String) { self.hex = hex }

  public static func of(_ bytes: some DataProtocol) -> ContentDigest {
    ContentDigest(hex: hexString(SHA256.hash(data: bytes)))
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
  public mutating func finalize() -> String { hexString(hasher.finalize()) }
}

/// Lower-case hex digits, by value: every hex rendering and comparison here uses this one table.
let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// Lower-case hex of bytes through a lookup table: `String(format:)` per byte cost ~100 µs per
/// digest here, which at thousands of domains dominated `plan`.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
  let digits = hexDigits
  var out: [UInt8] = []
  out.reserveCapacity(64)
  for b in bytes {
    out.append(digits[Int(b >> 4)])
    out.append(digits[Int(b & 0x0F)])
  }
  return String(decoding: out, as: UTF8.self)
}
