import DroverBasics
import DroverRollout
import Foundation

/// What heal passes remember of a pool's nodes between runs (`NodeMemory`: the last beat, since
/// when a node has been unhealthy), one JSON file per pool in the project's state folder,
/// written under the pool's lock by rename (a crash leaves the old file or the new one).
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

  /// The pool's memory; empty when there is none or it cannot be read (see above).
  public func read(pool: String) -> [String: NodeMemory] {
    guard let data = FileManager.default.contents(atPath: path(pool: pool)), let file = try? JSONDecoder().decode(File.self, from: data) else { return [:] }
    return file.nodes
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
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      let target = path(pool: pool)
      try encoder.encode(File(nodes: nodes)).write(to: URL(fileURLWithPath: target + ".new"))
      guard rename(target + ".new", target) == 0 else { throw Diagnostic.error("heal.ledger", String(cString: strerror(errno))) }
    } catch {
      throw Diagnostic.error(
        "heal.ledger", "cannot write the heal ledger of pool \(pool) in \(directory): \(error)", subject: "pool \(pool)",
        hint: "the state folder must be writable by Drover's user")
    }
  }
}
