import DroverBasics
import DroverModel
import LibYAML

/// Collects diagnostics while one file is decoded, and turns YAML marks into source ranges.
///
/// Decoders never stop at the first problem: they record it here and go on with a placeholder,
/// so one `drover validate` run reports every problem in every file.
struct DecodeContext {
  let file: String
  var diagnostics: [Diagnostic] = []
  /// What this machine allows (host-file roots, named hosts): never widened by a spec.
  var machine = MachineSettings()
  var hostPaths = HostPathPolicy.projectOnly
  /// The project's host entries and the machine's: what a pool's `hosts: [name]` resolves to.
  var hostDirectory = HostDirectory(entries: [], machine: MachineSettings())

  init(file: String) { self.file = file }

  func range(_ node: YAMLNode) -> SourceRange {
    SourceRange(
      file: file, start: SourcePosition(line: node.start.line, column: node.start.column, byte: node.start.offset),
      end: SourcePosition(line: node.end.line, column: node.end.column, byte: node.end.offset))
  }

  mutating func error(_ code: String, _ message: String, at node: YAMLNode, hint: String? = nil) {
    diagnostics.append(.error(code, message, at: range(node), hint: hint))
  }
}

/// Reads one YAML mapping as a set of named fields.
///
/// Why a reader rather than `Decodable`: it keeps the node of every key for positions, reports
/// duplicate keys (which libyaml accepts silently), and on `finish` reports every key nobody
/// asked for, with a did-you-mean.
struct MappingReader {
  let node: YAMLNode
  let what: String
  private var entries: [String: YAMLPair] = [:]
  private var order: [String] = []
  private var read: Set<String> = []
  let isMapping: Bool

  /// Reads `node` as a mapping named `what` ("pool", "resources"); reports it when it is not one.
  init(_ node: YAMLNode, what: String, context: inout DecodeContext) {
    self.node = node
    self.what = what
    guard case .mapping(let pairs) = node.content else {
      isMapping = false
      context.error("spec.type", "\(what) must be a mapping, not \(node.kindDescription)", at: node)
      return
    }
    isMapping = true
    for pair in pairs {
      guard let key = pair.key.scalar, pair.key.tag == nil || pair.key.tag == "tag:yaml.org,2002:str" else {
        context.error("spec.type", "keys of \(what) must be plain strings", at: pair.key)
        continue
      }
      if let first = entries[key] {
        context.error(
          "spec.duplicate-key", "duplicate key '\(key)' in \(what)", at: pair.key,
          hint: "first given at line \(first.key.start.line); remove one of them")
        continue
      }
      entries[key] = pair
      order.append(key)
    }
  }

  /// The value of `key`, or nil when absent (an explicit null counts as absent).
  mutating func optional(_ key: String) -> YAMLNode? {
    read.insert(key)
    guard let value = entries[key]?.value, !value.isNull else { return nil }
    return value
  }

  /// The value of `key`; reports it as missing (at the mapping) when absent.
  mutating func required(_ key: String, context: inout DecodeContext, hint: String? = nil) -> YAMLNode? {
    if let value = optional(key) { return value }
    if isMapping {
      if let present = entries[key] {
        context.error("spec.missing-key", "\(key) must not be empty", at: present.value, hint: hint)
      } else {
        context.error("spec.missing-key", "\(what) is missing required key '\(key)'", at: node, hint: hint)
      }
    }
    return nil
  }

  func has(_ key: String) -> Bool { entries[key] != nil }

  /// Reports every key that no decoder read, suggesting the nearest known one.
  func finish(context: inout DecodeContext) {
    for key in order where !read.contains(key) {
      let known = read.sorted()
      let suggestion = nearest(key, in: known)
      let hint = suggestion.map { "did you mean '\($0)'?" } ?? "known keys: \(known.joined(separator: ", "))"
      context.error("spec.unknown-key", "unknown key '\(key)' in \(what)", at: entries[key]!.key, hint: hint)
    }
  }
}

/// The closest candidate by edit distance, when close enough to be a likely typo.
func nearest(_ word: String, in candidates: [String]) -> String? {
  let scored = candidates.map { ($0, editDistance(word.lowercased(), $0)) }
  guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
  let limit = max(1, min(3, word.count / 3))
  return best.1 <= limit ? best.0 : nil
}

func editDistance(_ a: String, _ b: String) -> Int {
  let a = Array(a), b = Array(b)
  if a.isEmpty { return b.count }
  if b.isEmpty { return a.count }
  var previous = Array(0...b.count)
  var current = previous
  for i in 1...a.count {
    current[0] = i
    for j in 1...b.count {
      let cost = a[i - 1] == b[j - 1] ? 0 : 1
      current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    }
    swap(&previous, &current)
  }
  return previous[b.count]
}
