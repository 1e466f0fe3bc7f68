import DroverModel
import Foundation
import Testing

/// #18: the host keys a node printed on its first-boot console, as cloud-init prints them; what
/// is not a complete, consistent block is never a key.
@Suite struct ConsoleHostKeysTests {
  static let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaGq023EN6J+R0I3HrvPPTY3ngYIddJVT8SBxoEnYno"
  static let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBK3gz1IcnEryZGTvoKQ5DeHqTkLI7lCDvwHe7lD9QXLozpc1kC3IYiHdTMgw0yC8vFNIx1fDCiKGr0442HntVhY="
  static let block = "-----BEGIN SSH HOST KEY KEYS-----\r\n\(ecdsa) root@web-1\r\n\(ed) root@web-1\r\n-----END SSH HOST KEY KEYS-----\r\n"

  func read(_ text: String) -> ConsoleHostKeys.Reading { ConsoleHostKeys.read(Array(text.utf8)) }

  /// A real first-boot console of a Debian 12 node (cloud-init 22.4, captured by the system test):
  /// the three keys of the keys block, none of the fingerprints.
  @Test func aRealCloudInitConsole() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/consoles/cloud-init-22.4-first-boot.log")
    guard case .keys(let keys) = ConsoleHostKeys.read([UInt8](try Data(contentsOf: url))) else {
      Issue.record("no keys read")
      return
    }
    #expect(keys.map { $0.split(separator: " ")[0] } == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"])
    #expect(keys.contains("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILjrW5MYgTS47AW+LAcp028eTOcBg/ooJPNL79GJFwTo"))
  }

  @Test func aCompleteBlockGivesItsKeysWithoutComments() {
    #expect(read("[  OK  ] Started ssh.service\n" + Self.block + "DROVER READY web-1\n") == .keys([Self.ecdsa, Self.ed].sorted()))
  }

  @Test(arguments: [
    ("nothing yet", "Booting Linux\n", ConsoleHostKeys.Reading.notYet),
    ("a block still being printed", "-----BEGIN SSH HOST KEY KEYS-----\n\(ed) root@x\n", .notYet),
    ("an empty block", "-----BEGIN SSH HOST KEY KEYS-----\n-----END SSH HOST KEY KEYS-----\n", .notYet),
    ("a key outside any block", "\(ed) root@x\n", .notYet),
    ("the fingerprints block is not keys", "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:abc root@x (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n", .notYet),
    ("two blocks that disagree", "\(block)-----BEGIN SSH HOST KEY KEYS-----\n\(ed)\n-----END SSH HOST KEY KEYS-----\n", .conflicting),
    ("the same block twice", block + block, .keys([ecdsa, ed].sorted())),
    ("the logger's ec2: tag", "ec2: -----BEGIN SSH HOST KEY KEYS-----\nec2: \(ed) root@x\nec2: -----END SSH HOST KEY KEYS-----\n", .keys([ed])),
    ("an interleaved kernel line is skipped", "-----BEGIN SSH HOST KEY KEYS-----\n[   12.5] random: crng init done\n\(ed)\n-----END SSH HOST KEY KEYS-----\n", .keys([ed])),
  ])
  func readings(_ what: String, _ console: String, _ expected: ConsoleHostKeys.Reading) {
    #expect(read(console) == expected, "\(what)")
  }

  @Test(arguments: [
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ",  // an RSA blob under the ed25519 name
    "ssh-ed25519 not*base64*at*all*here",
    "ssh-ed25519 short",
    "ssh-ed25519",
  ])
  func notHostKeys(_ line: String) {
    #expect(ConsoleHostKeys.hostKey(line) == nil, "\(line)")
  }
}
