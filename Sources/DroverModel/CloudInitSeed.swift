import DroverBasics
import Foundation

/// A node's cloud-init NoCloud seed: `meta-data` and `user-data`, built from the pool's spec and
/// the node's record, without running a guest.
///
/// Why per node and derived: the identity a node gets at first boot — `instance-id` (name and
/// generation: a replacement is a new instance, so cloud-init runs again) and `local-hostname`
/// (the per-index name `web-1`, also for a surge node, so Slurm and Kubernetes see a stable
/// name) — must follow from what Drover records, never from a file someone could edit. The
/// pool's own `#cloud-config` is merged after Drover's (lists appended), as a second part.
public enum CloudInitSeed {
  public static let maximumUserData = 64 << 10
  /// The line the guest prints on its console when cloud-init has run Drover's part: a console
  /// health check can wait for it. Printed on every boot (`readyScript`).
  public static let readyMarker = "DROVER READY"
  /// Where the marker's script is written: cloud-init runs `scripts/per-boot` at every boot's
  /// final stage. A `runcmd` runs once per instance, so a node started again on its own disk
  /// (heal's start and reset rungs, apply's start, a restart for new vCPUs or memory) never said
  /// ready again and failed its console check while it served (seen on Debian nodes).
  public static let readyScript = "/var/lib/cloud/scripts/per-boot/drover-ready"

  public struct Files: Sendable, Hashable, Codable {
    public var metaData: String
    public var userData: String
    /// cloud-init's `network-config` (version 2), only for a pool with static addresses.
    public var networkConfig: String?
    public init(metaData: String, userData: String, networkConfig: String? = nil) {
      self.metaData = metaData
      self.userData = userData
      self.networkConfig = networkConfig
    }
  }

  /// An OpenSSH public key on one line: a known type, base64 key material, an optional comment.
  public static func isPublicKey(_ text: String) -> Bool {
    let types = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]
    guard text.utf8.count <= 16 << 10, !Terminal.hasControlCharacters(text) else { return false }
    let parts = text.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, types.contains(String(parts[0])), parts[1].count >= 16 else { return false }
    return parts[1].unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "+/=".unicodeScalars.contains($0) }
  }

  /// What of the pool goes into every seed (keys, user-data): part of each node's spec hash, so
  /// a change is a replacement (cloud-init applies a seed once per instance).
  public static func digest(_ pool: PoolSpec) -> String? {
    guard pool.seeded else { return nil }
    // Unchanged for pools without static addresses: their nodes are not replaced by this field's arrival.
    let addressing = pool.staticAddresses.map { "\n--addresses\n" + $0.summary } ?? ""
    return ContentDigest.of("seed 2\n" + pool.sshKeys.joined(separator: "\n") + "\n--\n" + (pool.userData ?? "") + addressing).short
  }

  /// The hostname a node's seed gives it: its domain's name (#42). The two halves of a surge
  /// pair (`web-1`, `web-1-g2`) run side by side, so a scheduler that names nodes by hostname
  /// (a kubelet registers under it) sees two nodes, never one name for both. (Nodes an older Drover
  /// seeded as a surge replacement kept their index name; the next replacement renames them.)
  public static func hostname(of o: NodeOwnership) -> String { o.node }

  /// The user Drover's own SSH connections (ssh health checks, `DROVER_NODE_SSH` in hooks) log in as.
  public static let droverUser = "drover"

  /// The seed of the node `o` records, or nil when its pool asks for none. `droverKey` is the
  /// project's SSH public key (`SSHIdentity`): Drover's user accepts it and nothing else.
  public static func files(for o: NodeOwnership, pool: PoolSpec, droverKey: String? = nil) -> Files? {
    guard pool.seeded else { return nil }
    let hostname = hostname(of: o)
    let meta = "instance-id: \(o.key)-g\(o.generation)\nlocal-hostname: \(hostname)\n"
    var own = "#cloud-config\n# Drover: identity and readiness of node \(hostname) (generation \(o.generation)).\n"
    if !pool.sshKeys.isEmpty {
      own += "ssh_authorized_keys:\n" + pool.sshKeys.map { "  - \(quoted($0))\n" }.joined()
    }
    if let droverKey, isPublicKey(droverKey) {
      own += "users:\n  - default\n  - name: \(droverUser)\n    gecos: Drover\n    shell: /bin/sh\n    lock_passwd: true\n"
        + "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    ssh_authorized_keys:\n      - \(quoted(droverKey))\n"
    }
    // The image's baked host keys would be every node's: each node makes its own at first boot and
    // prints them on its console, where Drover learns them (ConsoleHostKeys).
    own += "ssh_deletekeys: true\nssh:\n  emit_keys_to_console: true\n"
    // `sync` first: "ready" also means the host keys made at first boot and the lease are on
    // disk (a power cut right after an unsynced first boot left empty key files).
    let marker = "#!/bin/sh\nsync\necho \"\(readyMarker) $(hostname) $(cat /var/lib/cloud/data/instance-id)\" > /dev/ttyS0\n"
    own += "write_files:\n  - path: \(readyScript)\n    permissions: \"0755\"\n    content: \(quoted(marker))\n"
    // The address is the record's: the one Drover connects to is the one the node is given.
    let network = o.address.flatMap { address in
      pool.staticAddresses?.networkConfig(address: address, mac: NodeMAC.address(project: o.project, pool: o.pool, index: o.index, generation: o.generation))
    }
    guard let theirs = pool.userData else { return Files(metaData: meta, userData: own, networkConfig: network) }
    // Two parts: cloud-init merges the second into the first, appending lists (runcmd, keys).
    let boundary = "==drover-\(ContentDigest.of(own + theirs).short)=="
    func part(_ name: String, _ body: String, merge: Bool) -> String {
      "--\(boundary)\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\n"
        + (merge ? "Merge-Type: list(append)+dict(recurse_array)+str()\n" : "")
        + "Content-Disposition: attachment; filename=\"\(name)\"\n\n\(body)\(body.hasSuffix("\n") ? "" : "\n")"
    }
    let user = "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\nMIME-Version: 1.0\n\n"
      + part("drover.cfg", own, merge: false) + part("pool.cfg", theirs, merge: true) + "--\(boundary)--\n"
    return Files(metaData: meta, userData: user, networkConfig: network)
  }

  /// A YAML double-quoted scalar (JSON's escapes are YAML's).
  static func quoted(_ s: String) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = (try? encoder.encode(s)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
  }
}
