import DroverBasics
import DroverRollout
import Foundation

/// What heal passes remember of a pool's nodes between runs (`NodeMemory`: the last beat, since
/// when a node has been unhealthy, the repair rungs tried in its incident), one JSON document per
/// pool: a row of the shared state database when the project has one (so every machine running
/// heal or `watch` sees the same incidents and never repeats a rung another tried), else a file in
/// the project's state folder, written under the pool's lock by rename (a crash leaves the old
/// file or the new one), never through a link planted in its place (`StateFile`).
///
/// Why a file and not the journal: these are observations, not steps; losing them only restarts
/// each node's grace (a node is replaced later, never sooner) and its incident (the ladder starts
/// again from its gentlest rung).
///
/// The ledger drives actions (which repair rung comes next), so it is sealed like the journal: a
/// MAC under a key derived from the project key, bound to the project and the pool. A ledger that
/// does not verify — edited, forged, copied from another pool — is read as empty, which is the safe
/// direction: no incident, every grace restarted.
public struct HealLedger: Sendable {
  public let directory: String
  let keyring: Keyring?
  /// The project's shared state, when it keeps one: the ledger is then there, not in the folder.
  let shared: (any SharedStateBackend)?
  static let maxBytes = 4 << 20

  public init(stateDirectory: String, keyring: Keyring?, shared: (any SharedStateBackend)? = nil) {
    directory = stateDirectory + "/health"
    self.keyring = keyring
    self.shared = shared
  }

  /// The ledger in `state`: the shared database when the project has one.
  public static func configured(stateDirectory: String, keyring: Keyring?, state: StateStore) throws -> HealLedger {
    HealLedger(stateDirectory: stateDirectory, keyring: keyring, shared: try state.backend())
  }

  /// Where the ledger is, for messages.
  var location: String { shared?.location ?? directory }

  struct File: Codable {
    var formatVersion = "1"
    var nodes: [String: NodeMemory]
    /// When it was written (sealed with it): an old ledger — a restored backup, a replayed row —
    /// is read as none, so it can never bring back incidents whose rungs were tried long ago.
    var written: Double?
    /// The seal over the nodes' canonical JSON, the time it was written, the project and the pool
    /// (nil: unsealed).
    var mac: String?
  }

  /// How old a ledger may be and still count: passes run every few seconds (`watch`) or minutes
  /// (a timer); a ledger no pass rewrote for an hour only restarts graces and incidents.
  static let staleAfter: Double = 3600

  /// The canonical bytes a ledger's seal covers.
  static func canonical(_ nodes: [String: NodeMemory]) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(nodes)).map { String(decoding: $0, as: UTF8.self) } ?? ""
  }

  func fields(_ nodes: [String: NodeMemory], written: Double?, pool: String, project: String) -> [String?] {
    ["heal-ledger", project, pool, written.map { String($0) }, Self.canonical(nodes)]
  }

  public func path(pool: String) -> String { "\(directory)/\(pool).json" }

  /// The pool's memory; empty when there is none or it cannot be read (see above). The file is
  /// untrusted input like every state file: read without following links or blocking on a FIFO,
  /// at most 4 MiB, and every time in it kept within [0, `now`] (an edited time never traps a
  /// rendering, nor makes a node due sooner than a pass could have seen it).
  public func read(pool: String, now: Double = Date().timeIntervalSince1970) throws -> [String: NodeMemory] {
    let bytes: [UInt8]
    if let shared {
      // A database that does not answer fails the pass (nothing is decided on a memory that
      // could not be read); a row that does not verify is read as empty, like a file.
      guard let document = try shared.healLedger(pool: pool, maxBytes: Self.maxBytes) else { return [:] }
      bytes = document
    } else {
      guard case .success(let contents?) = StateFile.read(path(pool: pool), maxBytes: Self.maxBytes, tooLarge: "over 4 MiB") else { return [:] }
      bytes = contents.bytes
    }
    guard bytes.count <= Self.maxBytes, let file = try? JSONDecoder().decode(File.self, from: Data(bytes)),
      let key = keyring?.key, let mac = file.mac, let written = file.written,
      JournalSeal(key).verifies(fields(file.nodes, written: written, pool: pool, project: key.project), mac: mac),
      now - written <= Self.staleAfter
    else { return [:] }
    func clamp(_ t: Double) -> Double? { t.isFinite ? min(max(t, 0), now) : nil }
    return file.nodes.compactMapValues { m in
      var m = m
      guard let beat = clamp(m.lastBeat) else { return nil }
      m.lastBeat = beat
      m.unhealthySince = m.unhealthySince.flatMap(clamp)
      m.silentSeen = m.silentSeen.flatMap(clamp)
      return m
    }
  }

  /// The nodes the last pass of each pool judged unhealthy, by domain UUID, with why (drift
  /// reports them).
  public func unhealthy(pools: [String]) -> [String: String] {
    var result: [String: String] = [:]
    for pool in pools {
      for m in ((try? read(pool: pool)) ?? [:]).values where m.unhealthySince != nil { result[m.uuid] = m.reason ?? "unhealthy" }
    }
    return result
  }

  public func write(pool: String, _ nodes: [String: NodeMemory], now: Double = Date().timeIntervalSince1970) throws {
    func refuse(_ why: String) -> Diagnostic {
      Diagnostic.error(
        "heal.ledger", "cannot write the heal ledger of pool \(pool) in \(location): \(why)", subject: "pool \(pool)",
        hint: shared == nil ? "the state folder must be writable by Drover's user" : "check that the state database answers")
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let key = keyring?.key else { throw refuse("this machine has no key for the project to seal it with") }
    let mac = JournalSeal(key).mac(fields(nodes, written: now, pool: pool, project: key.project))
    guard let data = try? encoder.encode(File(nodes: nodes, written: now, mac: mac)) else { throw refuse("cannot encode it") }
    guard data.count <= Self.maxBytes else { throw refuse("it would be over 4 MiB (\(nodes.count) nodes)") }
    if let shared {
      do { try shared.writeHealLedger(pool: pool, document: [UInt8](data)) } catch { throw refuse(Diagnostic.line(of: error)) }
      return
    }
    do { try StateFile.ownDirectory(directory) } catch { throw refuse(error.message) }
    if let problem = StateFile.replace(path(pool: pool), with: [UInt8](data), mode: 0o600) { throw refuse(problem.reason) }
  }
}
