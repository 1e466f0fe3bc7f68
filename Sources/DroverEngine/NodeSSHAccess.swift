import DroverBasics
import DroverModel
import Foundation
import Synchronization

/// How Drover reaches a project's nodes over SSH: as `drover` with the project's derived key
/// (`SSHIdentity`), each node's host key pinned from its own console before the first connection.
///
/// Why pinned and never trusted on first use: a node's address comes from a DHCP lease, which
/// anyone on the network can answer for. The keys a node printed on its serial console at first
/// boot (`ConsoleHostKeys`) are pinned in `<state>/ssh/known_hosts.<project>` under the node's
/// alias (`<node>.<domain UUID>`: a replacement is a new machine with new keys), and every
/// connection uses exactly that file with `StrictHostKeyChecking=yes`. A key that differs from
/// the pinned one is refused, never re-learned.
///
/// The keys pinned first are also sealed into the node's domain record (`HostKeyRecord`), so every
/// machine holding the project key verifies the node without its console: the file of pins is a
/// cache of those records.
///
/// Files (all in the state folder, root's): the private key `id_ed25519` (0600, rewritten from
/// the record key when missing or different), the pins, and `node-ssh`, the command hooks get as
/// `DROVER_NODE_SSH`.
public struct NodeSSHAccess: Sendable {
  public let directory: String
  public let identityFile: String
  public let knownHostsFile: String
  /// `"$DROVER_NODE_SSH" command…` in a hook runs `command` on the hook's node.
  public let wrapper: String
  public let publicKey: String
  /// Who and where: Drover's user on port 22 on real nodes (a test's sshd runs elsewhere).
  public var user = CloudInitSeed.droverUser
  public var port = 22
  static let maxPinBytes = 4 << 20

  /// A node's pins are its domain's: name and UUID (fresh at every define), so a pin never
  /// outlives the machine it was learned from, on this machine or any other that holds the project.
  public static func alias(node: String, uuid: String) -> String { "\(node).\(uuid.lowercased())" }

  /// The project's pins, `<state>/ssh/known_hosts.<project>`.
  public static func knownHostsPath(stateDirectory: String, project: String) -> String { "\(stateDirectory)/ssh/known_hosts.\(project)" }

  /// Writes the key and the wrapper (when they differ from what is there) and returns the access.
  public static func prepare(
    stateDirectory: String, project: String, identity: SSHIdentity, user: String = CloudInitSeed.droverUser, port: Int = 22
  ) throws(Diagnostic) -> NodeSSHAccess {
    let directory = stateDirectory + "/ssh"
    var access = NodeSSHAccess(
      directory: directory, identityFile: directory + "/id_ed25519", knownHostsFile: knownHostsPath(stateDirectory: stateDirectory, project: project),
      wrapper: directory + "/node-ssh", publicKey: identity.publicKeyLine)
    access.user = user
    access.port = port
    // ssh reads these paths as config values (it splits on quotes and expands % and ${…}).
    guard !directory.contains(where: { "'\"\\#%$ \t\n".contains($0) }) else {
      throw Diagnostic.error(
        "state.ssh", "the state folder \(directory) has a character ssh would misread in a path (quote, backslash, #, %, $ or white space)",
        subject: directory, hint: "set state.dir in drover.yaml to a plain path")
    }
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw access.cannotWrite(directory, error.localizedDescription)
    }
    // The pins decide what Drover trusts: the folder is a real one of this user's, written by nobody else.
    var st = stat()
    guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
      throw Diagnostic.error(
        "state.ssh", "\(directory) must be a folder (not a link) of this user (uid \(geteuid())) that nobody else can write", subject: directory,
        hint: "chown root \(directory) && chmod 0700 \(directory)")
    }
    try access.ensure(access.identityFile, Array(identity.privateKeyFile.utf8), mode: 0o600)
    try access.ensure(access.wrapper, Array(access.wrapperScript().utf8), mode: 0o700)
    return access
  }

  func ensure(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(Diagnostic) {
    if case .success(let current?) = StateFile.read(path, maxBytes: 64 << 10, tooLarge: "too large"),
      current.bytes == bytes, current.owner == geteuid(), current.mode & 0o7777 == mode
    {
      return
    }
    if let problem = StateFile.replace(path, with: bytes, mode: mode) { throw cannotWrite(path, problem.reason) }
  }

  /// ssh's options for one connection: this file of pins only, this key only, no prompts, no
  /// agent or config of the user running Drover, a bounded connect.
  func options(alias: String, connectTimeout: Int) -> [String] {
    [
      "-F", "/dev/null", "-i", identityFile, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
      "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHostsFile)", "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "UpdateHostKeys=no", "-o", "HostKeyAlias=\(alias)", "-o", "ConnectTimeout=\(connectTimeout)",
      "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR", "-l", user, "-p", String(port),
    ]
  }

  /// The argv that runs `command` on the node at `address`.
  public func argv(address: String, alias: String, command: String, connectTimeout: Int = 10) -> [String] {
    ["/usr/bin/ssh"] + options(alias: alias, connectTimeout: connectTimeout) + ["--", address, command]
  }

  /// The wrapper hooks run: the same options, the node taken from the hook's environment.
  func wrapperScript() -> String {
    func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    let fixed = options(alias: "ALIAS", connectTimeout: 10).map { $0 == "HostKeyAlias=ALIAS" ? "\"HostKeyAlias=$DROVER_NODE_HOSTKEY_ALIAS\"" : quoted($0) }
    return """
      #!/bin/sh
      # Written by Drover: runs a command on the node of the hook that calls it, over SSH as \(user),
      # with the node's host key pinned from its console (never trusted on first use).
      # Usage in a hook: "$DROVER_NODE_SSH" systemctl stop slurmd
      if [ -z "$DROVER_NODE_IP" ] || [ -z "$DROVER_NODE_HOSTKEY_ALIAS" ]; then
        echo "node-ssh: DROVER_NODE_IP and DROVER_NODE_HOSTKEY_ALIAS are not set (the node has no address yet, or this is not a Drover hook)" >&2
        exit 255
      fi
      exec /usr/bin/ssh \(fixed.joined(separator: " ")) -- "$DROVER_NODE_IP" "$@"

      """
  }

  public enum Pinning: Sendable, Equatable {
    case pinned
    /// Not pinned yet, and why (the console has not shown the keys yet).
    case notYet(String)
    /// Never connect: what was seen contradicts the pins.
    case refused(String)
    /// The pins could not be read or written here (a lock held too long, a full disk, an edited
    /// file): not a verdict on the node, so a check waits and tries again.
    case unavailable(String)
  }

  /// Makes sure `alias` has pins, from the first of: this machine's pins (a cache, checked once
  /// per process against the node's record), the keys sealed into the node's domain record
  /// (`record`: pinned there by whichever machine saw the node's console first), the console —
  /// whose keys are then sealed into the record before they are pinned here. Keys shown that
  /// differ from the sealed or cached ones are refused: a node's keys never change, so the node is
  /// not the one that was pinned. No libvirt call is made under the pins file's lock.
  public func pin(alias: String, console: [UInt8]?, record: HostKeyRecord? = nil) -> Pinning {
    let reading = console.map(ConsoleHostKeys.read) ?? .notYet
    if case .conflicting = reading { return .refused("the console of \(alias) shows two different sets of host keys") }
    var shown: [String]?
    if case .keys(let keys) = reading { shown = keys }
    do {
      let cached = try StateFile.locked(knownHostsFile) { () throws(Diagnostic) -> [String] in try readPins()[alias] ?? [] }
      if !cached.isEmpty {
        if let shown, Set(shown) != Set(cached) { return .refused(changed(alias, "pinned for it in \(knownHostsFile)")) }
        guard let record, Self.firstLookThisProcess(knownHostsFile, alias) else { return .pinned }
        // Once per process: the record is the truth, the cache may be older (a node pinned before
        // keys were sealed, or re-adopted from another machine).
        switch record.read() {
        case .none:
          if let why = record.seal(cached) { Self.lookAgain(knownHostsFile, alias); return .unavailable("its pinned host keys could not be sealed into its domain record: \(why)") }
          return .pinned
        case .keys(let sealed) where Set(sealed) == Set(cached): return .pinned
        case .keys(let sealed):
          if let shown, Set(shown) != Set(sealed) { return .refused(changed(alias, "sealed in its domain record")) }
          return try store(alias, sealed, replacing: true)
        case .cannotCheck: Self.lookAgain(knownHostsFile, alias); return .pinned
        case .forged(let why): return .refused(untrusted(alias, why))
        }
      }
      let keys: [String]
      switch record?.read() ?? .none {
      case .cannotCheck(let why): return .unavailable("its host keys are not pinned on this machine, and \(why)")
      case .forged(let why): return .refused(untrusted(alias, why))
      case .keys(let sealed):
        if let shown, Set(shown) != Set(sealed) { return .refused(changed(alias, "sealed in its domain record")) }
        keys = sealed
      case .none:
        guard let shown else { return .notYet("its host keys are not on its console yet (cloud-init prints them at its final stage)") }
        // Checked before sealing: keys another node showed are never sealed for this one.
        if let other = try sharing(alias, shown) { return .refused(sharedKeys(alias, other)) }
        if let record, let why = record.seal(shown) { return .unavailable("its host keys could not be sealed into its domain record: \(why)") }
        keys = shown
      }
      return try store(alias, keys, replacing: false)
    } catch {
      return .unavailable(error.message)
    }
  }

  /// Pins `keys` for `alias` under the file's lock, checking again what another thread or process
  /// pinned meanwhile; `replacing` swaps a cached set the node's record contradicts.
  func store(_ alias: String, _ keys: [String], replacing: Bool) throws(Diagnostic) -> Pinning {
    try StateFile.locked(knownHostsFile) { () throws(Diagnostic) -> Pinning in
      var pins = try readPins()
      if !replacing, let current = pins[alias], !current.isEmpty {
        return Set(current) == Set(keys) ? .pinned : .refused(changed(alias, "pinned for it in \(knownHostsFile)"))
      }
      // Every node makes its own keys at first boot: a key another node already showed means
      // the two share keys (an image's baked ones), and one could pass for the other.
      if let other = Self.pinnedElsewhere(keys, not: alias, in: pins) { return .refused(sharedKeys(alias, other)) }
      pins[alias] = keys
      try writePins(pins)
      return .pinned
    }
  }

  func sharing(_ alias: String, _ keys: [String]) throws(Diagnostic) -> String? {
    try StateFile.locked(knownHostsFile) { () throws(Diagnostic) -> String? in
      Self.pinnedElsewhere(keys, not: alias, in: try readPins())
    }
  }

  /// The node other than `alias` whose pins include one of `keys`, if any.
  static func pinnedElsewhere(_ keys: [String], not alias: String, in pins: [String: [String]]) -> String? {
    pins.first(where: { $0.key != alias && !Set($0.value).isDisjoint(with: keys) })?.key
  }

  func untrusted(_ alias: String, _ why: String) -> String { "the host keys in the domain record of \(alias) are not trusted: \(why)" }

  func sharedKeys(_ alias: String, _ other: String) -> String {
    "the host keys of \(alias) include one already pinned for \(other): nodes must not share host keys"
  }

  /// Which cached pins this process has checked against their records (one record read per node
  /// per process: `watch` does not read every record on every pass).
  static let looked = Mutex<Set<String>>([])
  static func firstLookThisProcess(_ file: String, _ alias: String) -> Bool { looked.withLock { $0.insert(file + " " + alias).inserted } }
  static func lookAgain(_ file: String, _ alias: String) { _ = looked.withLock { $0.remove(file + " " + alias) } }

  func changed(_ alias: String, _ pinned: String) -> String {
    "the host keys shown by \(alias) differ from the ones \(pinned): a node's host keys never change, so this is not the node that was pinned"
      + " (a node rebuilt outside Drover is a new machine: let Drover replace it; `drover adopt` a domain whose record no longer verifies drops its old keys)"
  }

  /// Drops every pin of the domain `uuid`, whatever name it had (a domain renamed, then adopted).
  public func forget(uuid: String) throws(Diagnostic) {
    guard FileManager.default.fileExists(atPath: knownHostsFile) else { return }
    let suffix = "." + uuid.lowercased()
    let aliases = try StateFile.locked(knownHostsFile) { () throws(Diagnostic) -> [String] in try readPins().keys.filter { $0.hasSuffix(suffix) } }
    try forget(aliases: aliases)
  }

  /// Drops the pins of nodes that are gone.
  public func forget(aliases: [String]) throws(Diagnostic) {
    guard !aliases.isEmpty, FileManager.default.fileExists(atPath: knownHostsFile) else { return }
    try StateFile.locked(knownHostsFile) { () throws(Diagnostic) in
      var pins = try readPins()
      let before = pins.count
      for alias in aliases { pins[alias] = nil }
      if pins.count != before { try writePins(pins) }
    }
  }

  /// The pins: `<alias> <type> <base64>` per line, read as untrusted (a line that is not one is an error).
  func readPins() throws(Diagnostic) -> [String: [String]] {
    let contents: StateFile.Contents
    switch StateFile.read(knownHostsFile, maxBytes: Self.maxPinBytes, tooLarge: "over 4 MiB") {
    case .success(nil): return [:]
    case .success(let read?): contents = read
    case .failure(let problem): throw unreadable(problem.reason)
    }
    guard contents.owner == geteuid(), contents.mode & 0o022 == 0 else {
      throw unreadable("it must belong to this user (uid \(geteuid())) and be writable by nobody else")
    }
    var pins: [String: [String]] = [:]
    for (n, line) in String(decoding: contents.bytes, as: UTF8.self).split(separator: "\n").enumerated() {
      if line.hasPrefix("#") || line.isEmpty { continue }
      let parts = line.split(separator: " ", maxSplits: 1)
      guard parts.count == 2, let key = ConsoleHostKeys.hostKey(String(parts[1])), key == parts[1] else {
        throw unreadable("line \(n + 1) is not '<alias> <key type> <base64>'")
      }
      pins[String(parts[0]), default: []].append(key)
    }
    return pins
  }

  func writePins(_ pins: [String: [String]]) throws(Diagnostic) {
    let text = "# Host keys Drover pinned from each node's first-boot console; ssh uses them through HostKeyAlias.\n"
      + pins.keys.sorted().flatMap { alias in pins[alias, default: []].map { "\(alias) \($0)\n" } }.joined()
    if let problem = StateFile.replace(knownHostsFile, with: Array(text.utf8), mode: 0o600) { throw cannotWrite(knownHostsFile, problem.reason) }
  }

  func unreadable(_ why: String) -> Diagnostic {
    .error(
      "state.known-hosts", "cannot read \(knownHostsFile): \(why)", subject: knownHostsFile,
      hint: "it caches the host keys sealed in each node's domain record; Drover checks it against the records and fills a missing one again from them")
  }

  func cannotWrite(_ path: String, _ why: String) -> Diagnostic {
    .error("state.ssh", "cannot write \(path): \(why)", subject: path, hint: "Drover keeps its SSH key and pinned host keys there; make the state folder writable")
  }
}

/// A node's domain record as the keeper of its host keys (`HostKeyRecording` on its host), as
/// `NodeSSHAccess.pin` uses it.
public struct HostKeyRecord: Sendable {
  public var read: @Sendable () -> RecordedHostKeys
  /// Nil when the keys are sealed into the record now; else why not.
  public var seal: @Sendable ([String]) -> String?

  public init(read: @escaping @Sendable () -> RecordedHostKeys, seal: @escaping @Sendable ([String]) -> String?) {
    self.read = read
    self.seal = seal
  }

  /// The record of the domain `node` (UUID `uuid`) on `backend`; nil when the host keeps none.
  public static func of(_ backend: (any HostBackend)?, node: String, uuid: String) -> HostKeyRecord? {
    guard let recorder = backend as? HostKeyRecording else { return nil }
    nonisolated(unsafe) let r = recorder
    return HostKeyRecord(
      read: { r.recordedHostKeys(node: node, uuid: uuid) },
      seal: { keys in
        do {
          try r.recordHostKeys(keys, node: node, uuid: uuid)
          return nil
        } catch {
          return Diagnostic.line(of: error)
        }
      })
  }
}
