import Foundation

/// What the hooks of one rollout step printed (a cordon, drain or uncordon hook's output), so
/// the step's line can show it indented under it. Hooks run on the step's own thread, so a
/// collector on that thread sees exactly that step's hooks, never another node's. Bounded.
enum StepOutput {
  static let key = "drover.step-output"
  static let limit = 4096

  /// Runs `body`, returning what the hooks it ran printed (trimmed; nil when nothing).
  static func collect<T>(_ body: () throws -> T) rethrows -> (value: T, output: String?) {
    let thread = Thread.current
    thread.threadDictionary[key] = ""
    defer { thread.threadDictionary.removeObject(forKey: key) }
    let value = try body()
    let text = (thread.threadDictionary[key] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    return (value, text.isEmpty ? nil : text)
  }

  /// Called by `HookRunner` with every hook's output; kept only inside `collect`.
  static func record(_ output: String) {
    let thread = Thread.current
    guard var text = thread.threadDictionary[key] as? String else { return }
    text += output.hasSuffix("\n") || output.isEmpty ? output : output + "\n"
    // The last `limit` bytes, cut where a character begins (never mid-way through one).
    if text.utf8.count > limit { text = String(decoding: Array(text.utf8.suffix(limit)), as: UTF8.self) }
    thread.threadDictionary[key] = text
  }
}
