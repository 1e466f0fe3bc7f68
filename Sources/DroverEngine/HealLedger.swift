import DroverBasics
import DroverRollout
import Foundation

/// What heal passes remember of a pool's nodes between runs (`NodeMemory`: the last beat, since
/// when a node has been unhealthy), one JSON file per pool in the project's state folder,
/// written under the pool's lock by rename (a crash leaves the old file or the new one), never
/// through a link planted in its place (`StateFile`).
///
/// Why a file and not the journal: these are observations, not steps; losing them only restarts
/// each node's grace (a node is replaced later, never sooner).
public struct HealLedger: Sendable {
  public let directory: String

  public init(stateDirectory: String) { directory = stateDirectory + "/health" }

  struct File: Codable {
    var formatVersion = "1"
    var nodes: [String: NodeMemory]
  }

  public func path(pool: String) -> String { "\(directory)/\(pool).json" }

  /// The pool's memory; empty when there is none or it cannot be read (see above). The file is
  /// untrusted input like every state file: read without following links or blocking on a FIFO,
  /// at most 4 MiB, and every time in it kept within [0, `now`] (an edited time never traps a
  /// rendering, nor makes a node due sooner than a pass could have seen it).
  public func read(pool: String, now: Double = Date().timeIntervalSince1970) -> [String: NodeMemory] {
    guard case .success(let contents?) = StateFile.read(path(pool: pool), maxBytes: 4 << 20, tooLarge: "over 4 MiB"),
      let file = try? JSONDecoder().decode(File.self, from: Data(contents.bytes))
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
      for m in read(pool: pool).values where m.unhealthySince != nil { result[m.uuid] = m.reason ?? "unhealthy" }
    }
    return result
  }

  public func write(pool: String, _ nodes: [String: NodeMemory]) throws {
    func refuse(_ why: String) -> Diagnostic {
      Diagnostic.error(
        "heal.ledger", "cannot write the heal ledger of pool \(pool) in \(directory): \(why)", subject: "pool \(pool)",
        hint: "the state folder must be writable by Drover's user")
    }
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch { throw refuse("\(error)") }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(File(nodes: nodes)) else { throw refuse("cannot encode it") }
    if let problem = StateFile.replace(path(pool: pool), with: [UInt8](data), mode: 0o600) { throw refuse(problem.reason) }
  }
}
