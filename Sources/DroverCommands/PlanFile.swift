import DroverBasics
import DroverPlan
import Foundation

/// Reads and writes saved plans (`drover plan --out plans/NAME.plan`).
enum PlanFile {
  static func write(_ plan: Plan, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    let data = try encoder.encode(plan)
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    try data.write(to: URL(fileURLWithPath: path), options: .atomic)
  }

  static func read(_ path: String) throws -> Plan {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw Diagnostic.error("plan.file", "cannot read plan file", subject: path)
    }
    do {
      return try JSONDecoder().decode(Plan.self, from: data)
    } catch {
      throw Diagnostic.error(
        "plan.file", "not a Drover plan file: \(error)", subject: path, hint: "write one with drover plan --out \(path)")
    }
  }
}
