import DroverBasics
import Foundation

/// Versions of the tools a bake uses; part of the cache key (a new qemu-img may write other bytes).
///
/// Remembered per tool binary (path, size, mtime) so a cache hit starts no process.
public enum ToolVersions {
  static let tools: [(name: String, path: String, argv: [String])] = [
    ("qemu-img", "/usr/bin/qemu-img", ["/usr/bin/qemu-img", "--version"]),
    ("mkfs.ext4", "/usr/sbin/mkfs.ext4", ["/usr/sbin/mkfs.ext4", "-V"]),
    ("busybox", "/bin/busybox", ["/bin/busybox"]),
  ]

  /// Tools only some bakes use: versioned where they are used (mmdebstrap in a Debian layer's
  /// key), so a new one never changes the key of an image that does not use it.
  static let layerTools: [(name: String, path: String, argv: [String])] = [
    ("mmdebstrap", DebianLayer.tool, [DebianLayer.tool, "--version"])
  ]

  /// The version line of one of `layerTools`, remembered like the others.
  static func layerTool(_ name: String, stateDirectory: String, runner: ProcessRunner = ProcessRunner()) -> String {
    current(stateDirectory: stateDirectory, runner: runner, tools: layerTools.filter { $0.name == name }, cacheName: "layer-tool-versions.json")[name]
      ?? "missing"
  }

  public static func current(stateDirectory: String, runner: ProcessRunner = ProcessRunner()) -> [String: String] {
    current(stateDirectory: stateDirectory, runner: runner, tools: tools, cacheName: "tool-versions.json")
  }

  static func current(
    stateDirectory: String, runner: ProcessRunner, tools: [(name: String, path: String, argv: [String])], cacheName: String
  ) -> [String: String] {
    let cachePath = stateDirectory + "/" + cacheName
    var cache = (FileManager.default.contents(atPath: cachePath)).flatMap { try? JSONDecoder().decode([String: [String]].self, from: $0) } ?? [:]
    var result: [String: String] = ["drover-bake": "1"]
    var changed = false
    for tool in tools {
      let attributes = try? FileManager.default.attributesOfItem(atPath: tool.path)
      let stamp = "\((attributes?[.size] as? NSNumber)?.intValue ?? -1):\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
      if let cached = cache[tool.name], cached.count == 2, cached[0] == stamp {
        result[tool.name] = cached[1]
        continue
      }
      let output = (try? runner.run(tool.argv, timeout: 10)).map { $0.stdout + $0.stderr } ?? "missing"
      let line = output.split(separator: "\n").first.map(String.init) ?? "unknown"
      result[tool.name] = line
      cache[tool.name] = [stamp, line]
      changed = true
    }
    if changed, let data = try? JSONEncoder().encode(cache) {
      try? FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
      try? data.write(to: URL(fileURLWithPath: cachePath), options: .atomic)
    }
    return result
  }
}
