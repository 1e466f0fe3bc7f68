import Crypto
import Foundation
import Synchronization

/// A project's secret key: the HMAC-SHA-256 key that seals every ownership record Drover writes.
///
/// Why a key and not a digest: anyone with libvirt access can edit a domain's metadata, and a
/// digest anyone can recompute proves nothing. A record whose MAC verifies under this key was
/// written by a Drover that holds the project's key, for the UUID, name and host it names.
/// The key lives in Drover's state (never in the repository) and travels between machines as one
/// line of text (`drover key export` / `DROVER_PROJECT_KEY`).
public struct RecordKey: Sendable, Hashable {
  public let bytes: [UInt8]
  public let project: String
  /// Names the key in every record it seals without revealing it: a record sealed with another
  /// key is told apart from an edited one. Computed once (every record read compares it).
  public let id: String
  /// HMAC-SHA-256 with this key's pads already hashed: every MAC starts from a copy of it
  /// instead of deriving the key schedule again (one per record read or written).
  let prepared: PreparedMAC

  public init(bytes: [UInt8], project: String) {
    self.bytes = bytes
    self.project = project
    id = String(ContentDigest.of(Array("drover-key-id\n".utf8) + bytes).hex.prefix(16))
    prepared = PreparedMAC(key: bytes)
  }

  public static func == (a: RecordKey, b: RecordKey) -> Bool { a.bytes == b.bytes && a.project == b.project }
  public func hash(into hasher: inout Hasher) {
    hasher.combine(bytes)
    hasher.combine(project)
  }

  /// A fresh random 256-bit key.
  public static func generate(project: String) -> RecordKey {
    RecordKey(bytes: Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }), project: project)
  }


  /// HMAC-SHA-256 of `message`, lower-case hex.
  public func mac(_ message: [UInt8]) -> String { hexString(prepared.code(message)) }

  /// Compares a stored MAC (lower-case hex) with the one computed here in constant time.
  public func verifies(_ message: [UInt8], mac stored: String) -> Bool { prepared.matches(message, hex: stored) }

  /// The one-line form `drover key export` prints and `DROVER_PROJECT_KEY` holds:
  /// `drover-key-1:<project>:<64 hex digits>`.
  public var exported: String { "drover-key-1:\(project):\(hexString(bytes))" }

  /// Parses the exported form; the problem, when it is not one.
  public static func parse(_ text: String) -> Result<RecordKey, KeyTextProblem> {
    let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0] == "drover-key-1" else { return .failure(.notAKey) }
    let hex = Array(parts[2].utf8)
    guard hex.count == 64, hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return .failure(.notAKey) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(32)
    for i in stride(from: 0, to: 64, by: 2) {
      guard let b = UInt8(String(decoding: hex[i..<i + 2], as: UTF8.self), radix: 16) else { return .failure(.notAKey) }
      bytes.append(b)
    }
    return .success(RecordKey(bytes: bytes, project: String(parts[1])))
  }

  public enum KeyTextProblem: Error, Sendable { case notAKey }
}

/// An HMAC state keyed once; each use starts from a copy (swift-crypto's digest state is
/// copy-on-write, so copies on several threads never share what they update).
final class PreparedMAC: @unchecked Sendable {
  let start: HMAC<SHA256>
  init(_ start: HMAC<SHA256>) { self.start = start }

  convenience init(key bytes: [UInt8]) { self.init(HMAC<SHA256>(key: SymmetricKey(data: bytes))) }

  func code(_ message: [UInt8]) -> [UInt8] {
    var h = start
    h.update(data: message)
    return Array(h.finalize())
  }

  /// Whether `stored` (lower-case hex) is the MAC of `message`, compared in constant time against
  /// the stored bytes, without building a string.
  func matches(_ message: [UInt8], hex stored: String) -> Bool {
    let digits = hexDigits
    let code = code(message)
    var stored = stored
    return stored.withUTF8 { given -> Bool in
      guard given.count == 2 * code.count else { return false }
      var difference: UInt8 = 0
      for (i, b) in code.enumerated() {
        difference |= given[2 * i] ^ digits[Int(b >> 4)]
        difference |= given[2 * i + 1] ^ digits[Int(b & 0x0F)]
      }
      return difference == 0
    }
  }
}

/// The project whose records a process writes and the key it seals them with, shared by every
/// host connection of the process. The key is set once it is known: `apply` creates it when the
/// hosts hold no keyed record of the project yet, after the connections are open.
public final class Keyring: Sendable {
  public let project: String
  private let held: Mutex<RecordKey?>

  public init(project: String, key: RecordKey?) {
    self.project = project
    self.held = Mutex(key)
  }

  public var key: RecordKey? { held.withLock { $0 } }
  public func set(_ key: RecordKey) { held.withLock { $0 = key } }
}
