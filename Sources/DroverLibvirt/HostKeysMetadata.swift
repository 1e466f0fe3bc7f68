import DroverBasics
import DroverModel

/// The `<droverkeys:hostkeys>` metadata element: a node's SSH host keys, sealed into its domain
/// with the project key the first time any machine pinned them from the node's console.
///
/// Why in the domain: the console shows the keys once per instance (cloud-init) and is truncated
/// at every start, and pins in a state folder are one machine's. Sealed here, every machine and CI
/// runner holding the project key verifies the node without its console; local pins are a cache.
/// Its own namespace and MAC key (HKDF label "drover host keys seal 1"), bound to the domain's name
/// and UUID: the ownership record, and the fingerprints saved plans check, never change for it.
public enum HostKeysMetadata {
  public static let namespace = "https://drover.dev/xmlns/hostkeys/1"
  public static let prefix = "droverkeys"
  static let sealInfo = "drover host keys seal 1"
  /// A node shows a handful of keys (ed25519, ecdsa, rsa); more is not a record Drover wrote.
  static let maxKeys = 16
  static let maxBytes = 64 << 10

  static func fields(name: String, uuid: String, keys: [String]) -> [String?] { ["hostkeys", name, uuid.lowercased()] + keys.sorted() }

  /// The element for `virDomainSetMetadata` (which adds the prefix and namespace itself).
  public static func render(_ keys: [String], name: String, uuid: String, key: RecordKey) -> String {
    let seal = JournalSeal(key, info: sealInfo).mac(fields(name: name, uuid: uuid, keys: keys))
    var xml = "<hostkeys format=\"1\" name=\"\(XMLText.attribute(name))\" uuid=\"\(uuid.lowercased())\" key=\"\(key.id)\" seal=\"\(seal)\">"
    for k in keys.sorted() { xml += "<key value=\"\(XMLText.attribute(k))\"/>" }
    return xml + "</hostkeys>"
  }

  /// Checks the element read from the domain `name` (UUID `uuid`) under `key` (nil: this machine
  /// has none, so nothing here can be checked).
  public static func read(_ xml: String, name: String, uuid: String, key: RecordKey?) -> RecordedHostKeys {
    // A few keys are a few KiB: anything much larger is not a record Drover wrote (and is not parsed).
    guard xml.utf8.count <= maxBytes else { return .forged("its host-key record is over \(maxBytes / 1024) KiB") }
    let tags = XMLText.startTags(xml)
    guard let root = tags.first, root.name == "hostkeys" || root.name.hasSuffix(":hostkeys") else {
      return .forged("its host-key record is not one Drover writes")
    }
    let keys = tags.dropFirst().filter { $0.name == "key" || $0.name.hasSuffix(":key") }.compactMap { $0["value"] }
    guard !keys.isEmpty, keys.count <= maxKeys, keys.allSatisfy({ ConsoleHostKeys.hostKey($0) == $0 }) else {
      return .forged("its host-key record does not hold 1 to \(maxKeys) SSH public keys")
    }
    guard root["name"] == name, OwnershipMetadata.sameUUID(root["uuid"] ?? "", uuid) else {
      return .forged(
        "its host keys were sealed for \(Terminal.printable(String((root["name"] ?? "no name").prefix(64)))) (UUID \(Terminal.printable(String((root["uuid"] ?? "none").prefix(40))))), not this domain: a copy")
    }
    guard let key else { return .cannotCheck("this machine has no project key to check the host keys sealed in its record") }
    guard root["key"] == key.id else {
      return .forged("its host keys are sealed with key \(Terminal.printable(String((root["key"] ?? "none").prefix(40)))), not project \(key.project)'s key \(key.id)")
    }
    guard let mac = root["seal"], JournalSeal(key, info: sealInfo).verifies(fields(name: name, uuid: uuid, keys: keys), mac: mac) else {
      return .forged("the host keys sealed in its record do not verify under the project key: edited or forged")
    }
    return .keys(keys)
  }
}
