import DroverBasics
import DroverEngine
import DroverRollout
import DroverModel
import Foundation
import Testing

/// #38: every journal record is sealed, and a journal whose records do not all verify is refused
/// by name — a forged, edited, replayed, reordered or cross-project row, or an unsealed row after
/// sealed ones — on the local file (here) and in PostgreSQL (`SharedStateCLITests`).
@Suite struct JournalIntegrityTests {
  static let key = RecordKey(bytes: Array(repeating: 9, count: 32), project: "shop")
  static let seal = JournalSeal(key)

  static func record(_ seq: Int, _ event: JournalRecord.Event = .stepDone, rollout: String = "web-1", node: String? = "web-1", detail: String? = nil) -> JournalRecord {
    JournalRecord(seq: seq, time: 1_700_000_000 + Double(seq), rollout: rollout, event: event, node: node, step: "create", detail: detail)
  }

  static func sealed(_ records: [JournalRecord], seal: JournalSeal = seal, pool: String = "web", prefix: String = "") -> [JournalRecord] {
    records.map { JournalIntegrity.seal($0, with: seal, pool: pool, prefix: prefix) }
  }

  static func check(_ records: [JournalRecord], seal: JournalSeal? = seal) -> Result<JournalIntegrity.Checked, Diagnostic> {
    JournalIntegrity.check(records, seal: seal, project: "shop", pool: "web")
  }

  static func refusal(_ records: [JournalRecord], seal: JournalSeal? = seal) -> String? {
    if case .failure(let d) = check(records, seal: seal) { return d.code + ": " + d.message }
    return nil
  }

  @Test func aSealedJournalVerifies() throws {
    let journal = Self.sealed([Self.record(1, .rolloutStarted, detail: "{}"), Self.record(2), Self.record(3)])
    #expect(journal.allSatisfy { $0.mac?.count == 64 })
    #expect(Self.refusal(journal) == nil)
  }

  /// #41: the fencing token a record was written under is sealed with it: changed, dropped or
  /// added to a record that had none, the record no longer verifies.
  @Test func theFencingTokenIsSealed() throws {
    var fenced = Self.record(2)
    fenced.fence = 41
    let journal = Self.sealed([Self.record(1, .rolloutStarted, detail: "{}"), fenced])
    #expect(Self.refusal(journal) == nil)
    for change in [Int64?.some(42), nil] {
      var edited = journal
      edited[1].fence = change
      #expect(Self.refusal(edited)?.contains("journal record 2 of pool web") == true, "token \(String(describing: change))")
    }
    var added = journal
    added[0].fence = 41
    #expect(Self.refusal(added)?.contains("journal record 1 of pool web") == true)
  }

  struct Tamper: CustomTestStringConvertible, Sendable {
    var name: String
    var expected: String
    var apply: @Sendable ([JournalRecord]) -> [JournalRecord]
    var testDescription: String { name }
  }

  static let tampering: [Tamper] = [
    Tamper(name: "an edited row", expected: "journal record 2 of pool web (rollout web-1, step-done) does not verify") { j in
      var j = j
      j[1].node = "web-2"
      return j
    },
    Tamper(name: "an edited time (a cooldown skipped)", expected: "journal record 3 of pool web") { j in
      var j = j
      j[2].time -= 3600
      return j
    },
    Tamper(name: "a forged row with a made-up seal", expected: "journal record 4 of pool web (rollout heal-x, rollout-started) does not verify") { j in
      var forged = record(4, .rolloutStarted, rollout: "heal-x", detail: "{}")
      forged.mac = String(repeating: "ab", count: 32)
      return j + [forged]
    },
    Tamper(name: "a row without a seal after sealed ones", expected: "journal record 4 of pool web (rollout heal-x, rollout-started) has no seal, after sealed records") { j in
      j + [record(4, .rolloutStarted, rollout: "heal-x", detail: "{}")]
    },
    Tamper(name: "a replayed row under a new number", expected: "journal record 4 of pool web (rollout web-1, rollout-started) does not verify") { j in
      var copy = j[0]
      copy.seq = 4
      return j + [copy]
    },
    Tamper(name: "a replayed row under its own number", expected: "is numbered 1 after 3: a replayed or reordered row") { j in j + [j[0]] },
    Tamper(name: "a reordered journal", expected: "is numbered 2 after 3: a replayed or reordered row") { j in [j[0], j[2], j[1]] },
    Tamper(name: "a row copied from another pool", expected: "journal record 4 of pool web") { j in
      j + sealed([record(4)], pool: "db")
    },
    Tamper(name: "a row sealed for another project", expected: "journal record 4 of pool web") { j in
      j + sealed([record(4)], seal: JournalSeal(RecordKey(bytes: Array(repeating: 9, count: 32), project: "other")))
    },
    Tamper(name: "a row sealed with another key", expected: "journal record 4 of pool web") { j in
      j + sealed([record(4)], seal: JournalSeal(RecordKey(bytes: Array(repeating: 1, count: 32), project: "shop")))
    },
  ]

  @Test(arguments: tampering) func tamperingIsRefusedByName(_ t: Tamper) throws {
    let journal = Self.sealed([Self.record(1, .rolloutStarted, detail: "{}"), Self.record(2), Self.record(3)])
    let why = try #require(Self.refusal(t.apply(journal)), "\(t.name) was accepted")
    #expect(why.hasPrefix("state.journal-forged: ") && why.contains(t.expected) && why.contains("nothing in this journal is acted on"), "\(why)")
  }

  @Test func withoutTheKeyASealedJournalIsNeverActedOn() {
    let why = Self.refusal(Self.sealed([Self.record(1)]), seal: nil)
    #expect(why?.hasPrefix("records.no-key: ") == true, "\(why ?? "accepted")")
  }

  /// Records an older Drover wrote unsealed are accepted while no sealed record follows them (to
  /// finish or abort the rollout in progress); every sealed record then binds them, so the legacy
  /// prefix cannot be edited afterwards.
  @Test func aLegacyPrefixIsAcceptedAndThenBound() throws {
    let legacy = [Self.record(1, .rolloutStarted, detail: "{}"), Self.record(2)]
    #expect(Self.refusal(legacy) == nil && Self.refusal(legacy, seal: nil) == nil, "an older Drover's journal is read as it is")
    let prefix = JournalIntegrity.prefixDigest(legacy)
    let journal = legacy + Self.sealed([Self.record(3, .completed)], prefix: prefix)
    #expect(Self.refusal(journal) == nil)
    if case .success(let good) = Self.check(journal) { #expect(good.prefix == prefix) }
    var edited = journal
    edited[0].detail = "{\"nodes\": []}"
    #expect(Self.refusal(edited)?.contains("journal record 3 of pool web") == true, "an edit of the legacy prefix breaks every seal after it")
  }
}

/// #38: the heal ledger drives which repair comes next, so it is sealed too; one that does not
/// verify is read as empty — every grace and incident restarted, the safe direction.
@Suite struct HealLedgerSealTests {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-ledger-\(UUID().uuidString.prefix(8))").path
  static let keyring = Keyring(project: "shop", key: RecordKey(bytes: Array(repeating: 3, count: 32), project: "shop"))

  @Test func aLedgerThatDoesNotVerifyIsReadAsEmpty() throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ledger = HealLedger(stateDirectory: dir, keyring: Self.keyring)
    var memory = NodeMemory(uuid: "u1", lastBeat: 100, unhealthySince: 90, reason: "paused")
    memory.incident = RepairIncident(began: 90, attempts: [RepairAttempt(rung: .resume, at: 95, graceEnds: 215)])
    try ledger.write(pool: "web", ["web-1": memory])
    #expect(try ledger.read(pool: "web", now: 200)["web-1"]?.incident?.tried == [.resume])
    // Someone marks every gentler rung as tried, to have the node replaced at once.
    let path = ledger.path(pool: "web")
    let text = try String(contentsOfFile: path, encoding: .utf8)
    try text.replacingOccurrences(of: "\"rung\":\"resume\"", with: "\"rung\":\"reset\"").write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try ledger.read(pool: "web", now: 200).isEmpty, "an edited ledger is no ledger")
    // Another pool's ledger copied over this one, or one without a key to check it: empty too.
    try ledger.write(pool: "db", ["web-1": memory])
    try FileManager.default.removeItem(atPath: path)
    try FileManager.default.copyItem(atPath: ledger.path(pool: "db"), toPath: path)
    #expect(try ledger.read(pool: "web", now: 200).isEmpty)
    #expect(try HealLedger(stateDirectory: dir, keyring: Keyring(project: "shop", key: nil)).read(pool: "db", now: 200).isEmpty)
  }

  /// #36 review: a ledger sealed long ago — a restored backup, a replayed database row — brings
  /// back no incident (its rungs tried would otherwise hurry a node to replacement); its sealed
  /// time cannot be moved forward without breaking the seal.
  @Test func anOldLedgerIsReadAsNone() throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let ledger = HealLedger(stateDirectory: dir, keyring: Self.keyring)
    var memory = NodeMemory(uuid: "u1", lastBeat: 100, unhealthySince: 90, reason: "shut off")
    memory.incident = RepairIncident(began: 90, attempts: [RepairAttempt(rung: .start, at: 95, graceEnds: 215)])
    try ledger.write(pool: "web", ["web-1": memory], now: 1000)
    #expect(try ledger.read(pool: "web", now: 1000 + 3000)["web-1"]?.incident?.tried == [.start], "an hour is still fresh")
    #expect(try ledger.read(pool: "web", now: 1000 + 3700).isEmpty, "over an hour old: none")
    let path = ledger.path(pool: "web")
    let text = try String(contentsOfFile: path, encoding: .utf8)
    try text.replacingOccurrences(of: "\"written\":1000", with: "\"written\":4600").write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try ledger.read(pool: "web", now: 4700).isEmpty, "a time moved forward breaks the seal")
  }
}
