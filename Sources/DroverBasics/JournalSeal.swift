import Crypto
import Foundation

/// The MAC every journal record carries, so a record that drives an action (a rollout to resume,
/// a heal, a cooldown) is one a Drover holding the project's key wrote — never a row someone with
/// only database or state-folder access inserted, edited, replayed, reordered or copied from
/// another project.
///
/// Why a key of its own: derived from the project key with HKDF under its own label, so a journal
/// MAC can never stand for a domain record's (or the other way round). Each MAC binds the
/// project, the pool, the sequence number, the time and every field, plus the digest of the
/// unsealed records an older Drover wrote before the first sealed one (so that legacy prefix can
/// no longer be edited once a sealed record follows it).
public struct JournalSeal: Sendable {
  public let project: String
  public let keyID: String
  /// HMAC under the derived key, keyed once (`RecordKey`'s prepared state, its comparison).
  private let prepared: PreparedMAC

  /// `info` names what the derived key seals: one label per kind of record, so no kind's MAC
  /// can stand for another's.
  public init(_ recordKey: RecordKey, info: String = "drover journal seal 1") {
    project = recordKey.project
    keyID = recordKey.id
    let derived = HKDF<SHA256>.deriveKey(
      inputKeyMaterial: SymmetricKey(data: recordKey.bytes), salt: Array("drover".utf8), info: Array(info.utf8),
      outputByteCount: 32
    ).withUnsafeBytes { Array($0) }
    prepared = PreparedMAC(key: derived)
  }

  /// The MAC of `fields` (each length-prefixed: no two field lists share an encoding), hex.
  public func mac(_ fields: [String?]) -> String { hexString(prepared.code(Self.encode(fields))) }

  /// Whether `stored` is the MAC of `fields`, compared in constant time.
  public func verifies(_ fields: [String?], mac stored: String) -> Bool { prepared.matches(Self.encode(fields), hex: stored) }

  static func encode(_ fields: [String?]) -> [UInt8] {
    var out = Array("drover-journal-1\n".utf8)
    for field in fields {
      guard let field else {
        out += Array("-\n".utf8)
        continue
      }
      let bytes = Array(field.utf8)
      out += Array("\(bytes.count):".utf8) + bytes + [0x0A]
    }
    return out
  }
}
