import Crypto
import Foundation

/// The SSH key pair Drover uses to reach a project's nodes, derived from the project's record key.
///
/// Why derived and not generated: the record key is already the one secret a project has, and it
/// already travels to CI and other machines (`drover key export` / `DROVER_PROJECT_KEY`). A key
/// pair derived from it (HKDF-SHA-256 with its own label, so neither key reveals the other) is the
/// same on every machine that holds the project: a CI runner can SSH to nodes another machine
/// created without a second secret to copy. Whoever holds the record key can forge records anyway,
/// so it grants nothing new.
public struct SSHIdentity: Sendable, Hashable {
  /// `ssh-ed25519 <base64> drover@<project>`: what each node's seed authorises.
  public let publicKeyLine: String
  /// The private key in OpenSSH's own format (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted:
  /// it is written 0600 into the project's state folder, next to the record key it comes from.
  public let privateKeyFile: String

  public init(deriving key: RecordKey) {
    let seed = HKDF<SHA256>.deriveKey(
      inputKeyMaterial: SymmetricKey(data: key.bytes), info: Array("drover ssh identity 1\n\(key.project)".utf8), outputByteCount: 32)
    let seedBytes = seed.withUnsafeBytes { Array($0) }
    // 32 bytes are always a valid Ed25519 seed: this cannot fail.
    let privateKey = (try? Curve25519.Signing.PrivateKey(rawRepresentation: seedBytes)) ?? Curve25519.Signing.PrivateKey()
    let publicBytes = Array(privateKey.publicKey.rawRepresentation)
    let comment = "drover@\(key.project)"
    let publicBlob = Self.string("ssh-ed25519") + Self.string(publicBytes)
    publicKeyLine = "ssh-ed25519 \(Data(publicBlob).base64EncodedString()) \(comment)"
    privateKeyFile = Self.openSSHPrivateKey(seed: seedBytes, publicKey: publicBytes, publicBlob: publicBlob, comment: comment, check: key.bytes)
  }

  /// OpenSSH's `openssh-key-v1` container (PROTOCOL.key): no cipher, no KDF, one key. The check
  /// word is derived too, so the file is the same every time it is written.
  static func openSSHPrivateKey(seed: [UInt8], publicKey: [UInt8], publicBlob: [UInt8], comment: String, check: [UInt8]) -> String {
    let checkWord = Array(ContentDigest.of(Array("drover ssh check\n".utf8) + check).hex.utf8.prefix(4))
    var secret = checkWord + checkWord
    secret += string("ssh-ed25519") + string(publicKey) + string(seed + publicKey) + string(comment)
    var pad: UInt8 = 1
    while secret.count % 8 != 0 {
      secret.append(pad)
      pad += 1
    }
    var blob = Array("openssh-key-v1".utf8) + [0]
    blob += string("none") + string("none") + string([UInt8]()) + uint32(1) + string(publicBlob) + string(secret)
    let base64 = Data(blob).base64EncodedString()
    var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
    var rest = Substring(base64)
    while !rest.isEmpty {
      lines.append(String(rest.prefix(70)))
      rest = rest.dropFirst(70)
    }
    lines.append("-----END OPENSSH PRIVATE KEY-----")
    return lines.joined(separator: "\n") + "\n"
  }

  static func uint32(_ n: Int) -> [UInt8] { [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] }
  static func string(_ bytes: [UInt8]) -> [UInt8] { uint32(bytes.count) + bytes }
  static func string(_ text: String) -> [UInt8] { string(Array(text.utf8)) }
}
