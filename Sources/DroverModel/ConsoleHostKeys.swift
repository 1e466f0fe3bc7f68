import DroverBasics
import Foundation

/// The SSH host keys a node printed on its own serial console at first boot.
///
/// Why the console: it is the one channel from a new node that does not go through the network
/// Drover is about to trust. cloud-init regenerates a node's host keys on its first boot (an
/// image's baked keys would be shared by every node) and prints them between
/// `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`; Drover pins exactly
/// those before its first connection, so no key is ever accepted on first use.
public enum ConsoleHostKeys {
  public static let begin = "-----BEGIN SSH HOST KEY KEYS-----"
  public static let end = "-----END SSH HOST KEY KEYS-----"
  static let types: Set<String> = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]

  public enum Reading: Sendable, Hashable {
    /// No complete block yet (the node has not reached cloud-init's final stage).
    case notYet
    /// Each key as `<type> <base64>`, sorted, without the comment.
    case keys([String])
    /// Two blocks that disagree: nothing is pinned.
    case conflicting
  }

  /// Reads every complete block of `console`. Lines are taken as the console gives them: a
  /// carriage return and the `ec2: ` tag cloud-init's logger adds on some images are dropped;
  /// a line inside a block that is not a host key (a kernel message that interleaved) is skipped.
  public static func read(_ console: [UInt8]) -> Reading {
    let text = String(decoding: console, as: UTF8.self)
    var blocks: [[String]] = []
    var current: [String]?
    for raw in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
      var line = Substring(raw).trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
      if line.hasPrefix("ec2:") { line = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces) }
      if line == begin {
        current = []
      } else if line == end {
        if let keys = current, !keys.isEmpty { blocks.append(keys.sorted()) }
        current = nil
      } else if current != nil, let key = hostKey(line) {
        current?.append(key)
      }
    }
    guard let first = blocks.first else { return .notYet }
    return blocks.allSatisfy { Set($0) == Set(first) } ? .keys(Array(Set(first)).sorted()) : .conflicting
  }

  /// `<type> <base64>` when `line` is a host key of a known type (the comment dropped).
  public static func hostKey(_ line: String) -> String? {
    let parts = line.split(separator: " ", omittingEmptySubsequences: true)
    guard parts.count >= 2, types.contains(String(parts[0])), parts[1].count >= 16, parts[1].count <= 4096,
      parts[1].unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "+/=".unicodeScalars.contains($0)) }),
      let blob = Data(base64Encoded: String(parts[1])), blob.count >= 4 + parts[0].utf8.count
    else { return nil }
    // The blob names its own type first: a key line whose type and blob disagree is not a key.
    let bytes = [UInt8](blob)
    let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
    guard length == parts[0].utf8.count, Array(bytes[4..<4 + length]) == Array(parts[0].utf8) else { return nil }
    return "\(parts[0]) \(parts[1])"
  }
}
