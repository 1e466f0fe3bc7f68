import Foundation
import Testing

/// #18: no SSH connection Drover makes, or tells a hook to make, may accept a host key it did
/// not pin: no source file, script or shipped example turns host-key checking off or to
/// trust-on-first-use.
@Suite struct HostKeyPolicyTests {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  @Test func nothingTurnsHostKeyCheckingOff() throws {
    let forbidden = ["StrictHostKeyChecking=no", "StrictHostKeyChecking=accept-new", "StrictHostKeyChecking no", "UserKnownHostsFile=/dev/null"]
    var offenders: [String] = []
    for folder in ["Sources", "scripts", "examples", "contrib"] {
      let root = Self.repo.appendingPathComponent(folder)
      guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { continue }
      for case let url as URL in walker where !url.hasDirectoryPath {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
        for word in forbidden where text.contains(word) { offenders.append("\(url.path.dropFirst(Self.repo.path.count)): \(word)") }
      }
    }
    #expect(offenders.isEmpty, "\(offenders)")
  }
}
