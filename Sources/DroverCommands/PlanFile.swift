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
    do {
      if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
      try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw Diagnostic.error(
        "plan.file", "cannot save the plan: \(((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) } ?? "write failed")",
        subject: path, hint: "choose a writable path for --out")
    }
  }

  static func read(_ path: String) throws -> Plan {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw Diagnostic.error("plan.file", "cannot read plan file", subject: path)
    }
    do {
      return try JSONDecoder().decode(Plan.self, from: data)
    } catch {
      let why: String
      switch error {
      case DecodingError.dataCorrupted: why = "it is not valid JSON"
      case DecodingError.keyNotFound(let key, _): why = "it has no '\(key.stringValue)'"
      case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        why = "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
      default: why = "it cannot be decoded"
      }
      throw Diagnostic.error(
        "plan.file", "not a Drover plan file: \(why)", subject: path, hint: "write one with drover plan --out \(path)")
    }
  }
}
