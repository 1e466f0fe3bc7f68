import DroverBasics
import DroverPlan
import Foundation

/// The one JSON document of a plan: what `drover plan --json` prints, what `--out` saves and what
/// `drover show` and `drover apply FILE` read. A saved plan is a CI artifact anyone could have
/// edited, so reading it is a located error, never a crash.
enum PlanFile {
  /// The plan's own fields (snake_case) plus what is derived from them for readers: the summary,
  /// whether it changes anything, the world's digest, and the diagnostics planning gave.
  static func document(_ plan: Plan, diagnostics: [Diagnostic]) -> [String: Any] {
    var object = ((try? SnakeCaseJSON.object(plan)) as? [String: Any]) ?? [:]
    let s = plan.summary
    object["summary"] = ["add": s.add, "change": s.change, "destroy": s.destroy]
    object["has_changes"] = plan.hasChanges
    object["world_digest"] = plan.world.digest
    object["diagnostics"] = diagnostics.map(DiagnosticRenderer.jsonObject)
    return object
  }

  static func write(_ plan: Plan, diagnostics: [Diagnostic] = [], to path: String) throws {
    let object = document(plan, diagnostics: diagnostics)
    let directory = (path as NSString).deletingLastPathComponent
    do {
      let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
      if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
      try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw Diagnostic.error(
        "plan.file", "cannot save the plan: \(((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) } ?? "write failed")",
        subject: path, hint: "choose a writable path for --out")
    }
  }

  /// Plan files are small; anything far larger is not one (and is not read whole into memory).
  static let maxBytes = 64 << 20

  static func read(_ path: String) throws -> Plan {
    let notAPlan = { (why: String) in
      Diagnostic.error("plan.file", "not a Drover plan file: \(why)", subject: path, hint: "write one with drover plan --out \(path)")
    }
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular else {
      throw Diagnostic.error("plan.file", "cannot read plan file", subject: path, hint: "give the path of a file written by drover plan --out")
    }
    // The size before the bytes: a huge file is refused without being read.
    guard ((attributes[.size] as? NSNumber)?.intValue ?? 0) <= maxBytes else { throw notAPlan("it is larger than \(maxBytes >> 20) MiB") }
    guard let data = FileManager.default.contents(atPath: path), data.count <= maxBytes else {
      throw Diagnostic.error("plan.file", "cannot read plan file", subject: path, hint: "give the path of a file written by drover plan --out")
    }
    // The version first: a file of another format is named as such, not as "no field x".
    guard let parsed = try? JSONSerialization.jsonObject(with: data) else { throw notAPlan("it is not valid JSON") }
    guard let object = parsed as? [String: Any] else { throw notAPlan("it is not a JSON object") }
    let version = (object["format_version"] as? String ?? object["formatVersion"] as? String).map(Terminal.printable)
    guard let version else { throw notAPlan("it has no 'format_version'") }
    guard version == Plan.formatVersion else {
      throw Diagnostic.error(
        "plan.version", "the plan file has format \(version); this Drover reads \(Plan.formatVersion)", subject: path,
        hint: "make a new one with this Drover: drover plan --out \(path)")
    }
    do {
      // Every string of the file (keys too) with its control characters shown as `?`: what is
      // rendered from it, or named in an error, can neither move the cursor nor forge a line.
      // A plan that differed only there is refused by apply anyway (its actions would not be
      // what Drover plans now).
      let clean = try JSONSerialization.data(withJSONObject: printable(object))
      return try SnakeCaseJSON.decoder().decode(Plan.self, from: clean)
    } catch {
      let why: String
      switch error {
      case DecodingError.dataCorrupted(let context):
        why = context.codingPath.isEmpty ? "it cannot be decoded" : "'\(snakePath(context.codingPath))' is not valid"
      case DecodingError.keyNotFound(let key, let context):
        why = "it has no '\((context.codingPath.map { SnakeCaseJSON.snake($0.stringValue) } + [SnakeCaseJSON.snake(key.stringValue)]).joined(separator: "."))'"
      case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        why = "'\(snakePath(context.codingPath))' has the wrong type"
      default: why = "it cannot be decoded"
      }
      throw notAPlan(why)
    }
  }

  static func printable(_ value: Any) -> Any {
    switch value {
    case let s as String: return Terminal.printable(s)
    case let a as [Any]: return a.map(printable)
    case let o as [String: Any]:
      return Dictionary(o.map { (Terminal.printable($0.key), printable($0.value)) }, uniquingKeysWith: { a, _ in a })
    default: return value
    }
  }

  static func snakePath(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? SnakeCaseJSON.snake($0.stringValue) }.joined(separator: ".")
  }
}
