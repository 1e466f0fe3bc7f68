import DroverBasics
import DroverEngine
import DroverRollout
import Foundation
import Testing

/// The rollout journal against the damage a crash or an edit leaves, on real files.
@Suite struct JournalDamageTests {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-journal-\(UUID().uuidString.prefix(8))/journal").path
  static let keyring = Keyring(project: "shop", key: RecordKey(bytes: Array(repeating: 5, count: 32), project: "shop"))

  func start(_ journal: RolloutJournal) throws {
    let policy = RolloutPolicy(canary: 1, waves: [], maxSurge: 1, maxUnavailable: 0, budget: 0)
    let start = RolloutStart(pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: [["web-1"]], policy: policy, nodes: [])
    try journal.append("r1", .rolloutStarted, detail: String(decoding: try JSONEncoder().encode(start), as: UTF8.self))
    try journal.append("r1", .stepStarted, node: "web-1", step: "cordon")
  }

  @Test func aTornLastLineIsSetAsideAndTheNextRecordStandsAlone() throws {
    try start(try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local))
    let path = dir + "/web.jsonl"
    let handle = try #require(FileHandle(forWritingAtPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data("{\"seq\":3,\"time\":1,\"rollout\":\"r1\",\"ev".utf8))  // killed mid-write
    try handle.close()

    let reopened = try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local)
    #expect(reopened.damage?.contains("1 damaged line") == true)
    let aside = try #require(reopened.damagedPath)
    #expect(try String(contentsOfFile: aside, encoding: .utf8).contains("\"rollout\":\"r1\",\"ev"))
    #expect((try FileManager.default.attributesOfItem(atPath: aside)[.posixPermissions] as? Int) == 0o600, "what is set aside is as private as the journal")
    try reopened.append("r1", .stepDone, node: "web-1", step: "cordon")
    #expect(reopened.records().map(\.seq) == [1, 2, 3], "the new record is readable: it was not glued to the torn line")
    #expect(try reopened.active()?.lastStep?.finished == true)
    #expect(try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local).damage == nil, "reported once")
  }

  /// #38: links planted in the state folder — for the journal or its lock — are never followed:
  /// the journal is refused (never "no rollout"), and the file they point at is neither read nor
  /// written; a state folder that others can write, or a link in its place, is refused.
  @Test func plantedLinksAreNeverFollowed() throws {
    let outside = FileManager.default.temporaryDirectory.appendingPathComponent("drover-victim-\(UUID().uuidString.prefix(8))").path
    let secret = "root:x:0:0:not drover's\n"
    try secret.write(toFile: outside, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: outside) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: dir + "/web.jsonl", withDestinationPath: outside)
    let journal = try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local)
    #expect(throws: Diagnostic.self, "a link in the journal's place is no journal") { try journal.checkedRollouts() }
    #expect(throws: Diagnostic.self) { try journal.append("r1", .stepStarted, node: "web-1", step: "cordon") }
    try FileManager.default.removeItem(atPath: dir + "/web.jsonl")
    try? FileManager.default.removeItem(atPath: dir + "/web.jsonl.lock")
    try FileManager.default.createSymbolicLink(atPath: dir + "/web.jsonl.lock", withDestinationPath: outside)
    #expect(throws: Diagnostic.self, "a link in the lock's place is never opened") { try journal.append("r1", .stepStarted, node: "web-1", step: "cordon") }
    #expect(try String(contentsOfFile: outside, encoding: .utf8) == secret, "the file outside was not touched")
    // The state folder itself: writable by others, or a link, is refused.
    let parent = (dir as NSString).deletingLastPathComponent
    chmod(parent, 0o777)
    #expect(throws: Diagnostic.self) { try RolloutJournal(directory: self.dir, pool: "web", keyring: Self.keyring, state: .local) }
    chmod(parent, 0o700)
    let linked = parent + "-linked"
    try FileManager.default.createSymbolicLink(atPath: linked, withDestinationPath: parent)
    defer { try? FileManager.default.removeItem(atPath: linked) }
    #expect(throws: Diagnostic.self) { try RolloutJournal(directory: linked + "/journal", pool: "web", keyring: Self.keyring, state: .local) }
  }

  @Test func garbageIsReportedNotReadAsNoRollout() throws {
    try start(try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local))
    let handle = try #require(FileHandle(forWritingAtPath: dir + "/web.jsonl"))
    try handle.seekToEnd()
    var bytes = [UInt8](repeating: 0, count: 2 << 20)
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
    let reopened = try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local)
    #expect(reopened.damage != nil)
    #expect(try reopened.active()?.id == "r1", "the good records before the garbage still say a rollout is in progress")
  }

  @Test func concurrentAppendsReachTheFileInSequenceOrder() throws {
    let journal = try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local)
    try start(journal)
    BlockingFanOut.forEach(8, width: 8) { i in
      for _ in 0..<25 { _ = try? journal.append("r1", .stepStarted, node: "web-\(i)", step: "drain") }
    }
    // A second process's view: another journal object on the same file, appending too.
    let other = try RolloutJournal(directory: dir, pool: "web", keyring: Self.keyring, state: .local)
    try other.append("r1", .stepDone, node: "web-1", step: "drain")
    let seqs = journal.records().map(\.seq)
    #expect(seqs == Array(1...seqs.count), "strictly in order, no gap, no duplicate")
    #expect(seqs.count == 2 + 8 * 25 + 1)
  }
}
