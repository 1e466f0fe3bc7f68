import DroverBasics
import DroverEngine
import DroverRollout
import Foundation
import Testing

/// The rollout journal against the damage a crash or an edit leaves, on real files.
@Suite struct JournalDamageTests {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-journal-\(UUID().uuidString.prefix(8))").path

  func start(_ journal: RolloutJournal) throws {
    let policy = RolloutPolicy(canary: 1, waves: [], maxSurge: 1, maxUnavailable: 0, budget: 0)
    let start = RolloutStart(pool: "web", fromImage: "demo@v1", toImage: "demo@v2", schedule: [["web-1"]], policy: policy, nodes: [])
    try journal.append("r1", .rolloutStarted, detail: String(decoding: try JSONEncoder().encode(start), as: UTF8.self))
    try journal.append("r1", .stepStarted, node: "web-1", step: "cordon")
  }

  @Test func aTornLastLineIsSetAsideAndTheNextRecordStandsAlone() throws {
    try start(try RolloutJournal(directory: dir, pool: "web"))
    let path = dir + "/web.jsonl"
    let handle = try #require(FileHandle(forWritingAtPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data("{\"seq\":3,\"time\":1,\"rollout\":\"r1\",\"ev".utf8))  // killed mid-write
    try handle.close()

    let reopened = try RolloutJournal(directory: dir, pool: "web")
    #expect(reopened.damage?.contains("1 damaged line") == true)
    let aside = try #require(reopened.damagedPath)
    #expect(try String(contentsOfFile: aside, encoding: .utf8).contains("\"rollout\":\"r1\",\"ev"))
    try reopened.append("r1", .stepDone, node: "web-1", step: "cordon")
    #expect(reopened.records().map(\.seq) == [1, 2, 3], "the new record is readable: it was not glued to the torn line")
    #expect(reopened.active()?.lastStep?.finished == true)
    #expect(try RolloutJournal(directory: dir, pool: "web").damage == nil, "reported once")
  }

  @Test func garbageIsReportedNotReadAsNoRollout() throws {
    try start(try RolloutJournal(directory: dir, pool: "web"))
    let handle = try #require(FileHandle(forWritingAtPath: dir + "/web.jsonl"))
    try handle.seekToEnd()
    var bytes = [UInt8](repeating: 0, count: 2 << 20)
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
    let reopened = try RolloutJournal(directory: dir, pool: "web")
    #expect(reopened.damage != nil)
    #expect(reopened.active()?.id == "r1", "the good records before the garbage still say a rollout is in progress")
  }

  @Test func concurrentAppendsReachTheFileInSequenceOrder() throws {
    let journal = try RolloutJournal(directory: dir, pool: "web")
    try start(journal)
    BlockingFanOut.forEach(8, width: 8) { i in
      for _ in 0..<25 { _ = try? journal.append("r1", .stepStarted, node: "web-\(i)", step: "drain") }
    }
    // A second process's view: another journal object on the same file, appending too.
    let other = try RolloutJournal(directory: dir, pool: "web")
    try other.append("r1", .stepDone, node: "web-1", step: "drain")
    let seqs = journal.records().map(\.seq)
    #expect(seqs == Array(1...seqs.count), "strictly in order, no gap, no duplicate")
    #expect(seqs.count == 2 + 8 * 25 + 1)
  }
}
