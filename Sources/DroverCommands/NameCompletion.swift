import ArgumentParser
import DroverModel
import DroverRollout
import DroverSpec
import Foundation

/// Shell completion of the names a command takes — pools, nodes, images, rollouts — from the
/// project's files and this machine's local state only: completing a word never opens a libvirt
/// connection or the state database, so it is instant and works with every host down.
///
/// The shell calls `drover ---completion <command> -- <argument> …` with the words typed so far;
/// the project folder is the `-C`/`--dir` among them, else the current folder.
enum NameCompletion {
  static let pools = CompletionKind.custom { words, _, prefix in matching(Names(words).pools, prefix) }
  static let nodes = CompletionKind.custom { words, _, prefix in matching(Names(words).nodes, prefix) }
  /// `--target`/`--exclude`: a pool or a node.
  static let targets = CompletionKind.custom { words, _, prefix in
    let names = Names(words)
    return matching(names.pools + names.nodes, prefix)
  }
  static let images = CompletionKind.custom { words, _, prefix in matching(Names(words).images, prefix) }
  static let rollouts = CompletionKind.custom { words, _, prefix in matching(Names(words).rollouts, prefix) }

  static func matching(_ names: [String], _ prefix: String) -> [String] {
    Array(Set(names.filter { $0.hasPrefix(prefix) })).sorted()
  }

  /// What the project in the words' folder declares and this machine remembers.
  struct Names {
    let dir: String
    let specs: SpecSet

    init(_ words: [String], environment: [String: String] = ProcessInfo.processInfo.environment) {
      var dir = "."
      for (i, word) in words.enumerated() where (word == "-C" || word == "--dir") && i + 1 < words.count { dir = words[i + 1] }
      for word in words where word.hasPrefix("--dir=") { dir = String(word.dropFirst(6)) }
      self.dir = dir
      let (sources, _) = SpecFiles.read([dir + "/pools", dir + "/images"].filter { FileManager.default.fileExists(atPath: $0) })
      specs = SpecLoader.load(sources, projectFolder: dir).0
      self.environment = environment
    }

    let environment: [String: String]

    var pools: [String] {
      let stems = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/pools")) ?? [])
        .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.map { ($0 as NSString).deletingPathExtension }
      // A pool file that does not decode still offers its name (usually its file's).
      return specs.poolSpecs.map(\.name) + stems.filter { PoolName.isValid($0) }
    }

    /// `<pool>-<index>` for each index the spec declares (the names nodes start with).
    var nodes: [String] {
      specs.poolSpecs.flatMap { pool in NodeName.all(pool: pool.name, replicas: min(pool.replicas, 1000)) }
    }

    var images: [String] { specs.recipes.map(\.recipe.reference.description) }

    /// Rollout IDs in this machine's journals of the project (never the shared database).
    var rollouts: [String] {
      let (settings, _, _) = ProjectFileLoader.read(dir: dir)
      let project = environment["DROVER_PROJECT"] ?? settings?.project ?? ""
      guard !project.isEmpty || settings != nil else { return [] }
      var state = ProjectSettings.defaultStateDirectory(project: project)
      if case .local(let configured?) = settings?.state { state = configured.hasPrefix("/") ? configured : dir + "/" + configured }
      let folder = state + "/journal"
      let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".jsonl") }
      // Read only: a journal is never opened for writing, locked or repaired by a TAB.
      return files.filter { PoolName.isValid(String($0.dropLast(6))) }.flatMap { file -> [String] in
        let path = folder + "/" + file
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        guard size <= 16 << 20, let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
          (try? JSONDecoder().decode(JournalRecord.self, from: Data(line))).flatMap { $0.event == .rolloutStarted ? $0.rollout : nil }
        }
      }
    }
  }
}
