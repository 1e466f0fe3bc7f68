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

  public init(bytes: [UInt8], project: String) {
    self.bytes = bytes
    self.project = project
    id = String(ContentDigest.of(Array("drover-key-id\n".utf8) + bytes).hex.prefix(16))
  }

  /// A fresh random 256-bit key.
  public static func generate(project: String) -> RecordKey {
    RecordKey(bytes: Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }), project: project)
  }


  /// HMAC-SHA-256 of `message`, lower-case hex.
  public func mac(_ message: [UInt8]) -> String {
    hexString(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: bytes)))
  }

  /// Compares a stored MAC with the one computed here in constant time.
  public func verifies(_ message: [UInt8], mac stored: String) -> Bool {
    let expected = Array(mac(message).utf8)
    let given = Array(stored.utf8)
    guard expected.count == given.count else { return false }
    var difference: UInt8 = 0
    for i in expected.indices { difference |= expected[i] ^ given[i] }
    return difference == 0
  }

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
