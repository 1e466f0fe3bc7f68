import DroverBasics
import DroverModel
import Foundation

/// The package layer of a Debian image: `mmdebstrap`'s root filesystem as a folder, cached in
/// `<image dir>/.layers/debian-<suite>-<key>`.
///
/// Why a folder and not a tar: a bake hard-links the layer into its staging root (`cp -al`, about
/// a second) instead of writing and unpacking 800 MB, so a cold bake costs what mmdebstrap and
/// `mkfs.ext4 -d` cost by hand. The staging root is never written through: a recipe's file
/// replaces its target (unlink, then a new file), and `mkfs.ext4 -d` only reads.
///
/// Why a layer: installing packages is the slow part of a Debian bake (~100 s under TCG's
/// neighbours here), and a recipe's `files` and `commands` change far more often than its
/// package list. The layer's key covers the suite, variant, components and packages, the
/// machine's apt sources and the digests of its apt lists (an `apt-get update` that brings new
/// versions makes a new layer), and mmdebstrap's version — so a bake that changes only a file
/// reuses the layer and skips mmdebstrap entirely.
///
/// Owns: the layer's key, the mmdebstrap command line, the layer cache. Must not: run a build VM
/// or touch an image; take anything from a recipe but validated names onto a command line.
public enum DebianLayer {
  static let tool = "/usr/bin/mmdebstrap"
  static let listsDirectory = "/var/lib/apt/lists"
  static let sourceFiles = ["/etc/apt/sources.list"]
  static let sourceFolder = "/etc/apt/sources.list.d"

  /// What the machine's apt says: its suite, its sources (path → content) and its lists' digests.
  public struct MachineApt: Sendable, Hashable {
    public var suite: String?
    public var sources: [String: String]
    public var lists: [String: String]

    public init(suite: String?, sources: [String: String], lists: [String: String]) {
      self.suite = suite
      self.sources = sources
      self.lists = lists
    }

    /// Reads this machine's apt configuration (release files are hashed through `digests`, so a
    /// cache hit rereads none of them).
    public static func current(digests: FileDigestCache) -> MachineApt {
      var sources: [String: String] = [:]
      var paths = sourceFiles
      if let names = try? FileManager.default.contentsOfDirectory(atPath: sourceFolder) {
        paths += names.filter { $0.hasSuffix(".list") || $0.hasSuffix(".sources") }.sorted().map { sourceFolder + "/" + $0 }
      }
      for path in paths {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
          sources[path] = text
        }
      }
      var lists: [String: String] = [:]
      for name in (try? FileManager.default.contentsOfDirectory(atPath: listsDirectory)) ?? [] where name.hasSuffix("Release") {
        lists[name] = try? digests.digest(of: listsDirectory + "/" + name)
      }
      let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
      let suite = release.split(separator: "\n").first { $0.hasPrefix("VERSION_CODENAME=") }
        .map { String($0.dropFirst("VERSION_CODENAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
      return MachineApt(suite: suite, sources: sources, lists: lists)
    }
  }

  /// The layer's key: every input that can change what mmdebstrap installs.
  public static func key(_ base: ImageRecipe.DebianBase, machine: MachineApt, toolVersion: String) -> String {
    var material = "drover-debian-layer 1\nsuite \(base.suite)\nvariant \(base.variant)\n"
    material += "components \(base.components.joined(separator: ","))\npackages \(base.packages.joined(separator: ","))\n"
    material += "mmdebstrap \(toolVersion)\n"
    for (path, text) in machine.sources.sorted(by: { $0.key < $1.key }) { material += "source \(path) \(ContentDigest.of(text).hex)\n" }
    for (name, digest) in machine.lists.sorted(by: { $0.key < $1.key }) { material += "list \(name) \(digest)\n" }
    return ContentDigest.of(material).hex
  }

  /// mmdebstrap's arguments after its options: suite, target, mirrors. From the machine's own apt
  /// sources: its source files when the recipe's suite is the machine's, else the machine's
  /// Debian archive for that suite (mmdebstrap then adds updates and security for a stable suite).
  public static func mirrors(for base: ImageRecipe.DebianBase, machine: MachineApt) -> [String] {
    if base.suite == machine.suite, !machine.sources.isEmpty { return machine.sources.keys.sorted() }
    for (_, text) in machine.sources.sorted(by: { $0.key < $1.key }) {
      for line in text.split(separator: "\n") {
        let t = line.trimmingCharacters(in: .whitespaces)
        var uri: Substring?
        if t.hasPrefix("URIs:") { uri = t.dropFirst(5).split(separator: " ").first }
        if t.hasPrefix("deb ") { uri = t.split(separator: " ").dropFirst().first { !$0.hasPrefix("[") && $0.contains("://") } }
        if let uri, uri.contains("://"), !uri.contains("security") { return [String(uri)] }
      }
    }
    return []
  }

  /// The mmdebstrap command that writes the layer to `target`.
  public static func command(_ base: ImageRecipe.DebianBase, target: String, machine: MachineApt) -> [String] {
    // Not --quiet: it hides apt's own errors ("Unable to locate package …"), which `explain` reads.
    var argv = [tool, "--mode=root", "--format=directory", "--variant=\(base.variant)", "--components=\(base.components.joined(separator: ","))"]
    if !base.packages.isEmpty { argv.append("--include=\(base.packages.joined(separator: ","))") }
    return argv + [base.suite, target] + mirrors(for: base, machine: machine)
  }

  /// What a failed mmdebstrap said, in the recipe's terms: the packages apt could not find.
  public static func explain(_ stderr: String, base: ImageRecipe.DebianBase) -> String {
    var missing: [String] = []
    for line in stderr.split(separator: "\n") {
      for marker in ["Unable to locate package ", "Package '"] {
        guard let r = line.range(of: marker) else { continue }
        let name = line[r.upperBound...].prefix { $0 != " " && $0 != "'" }
        if base.packages.contains(String(name)), !missing.contains(String(name)) { missing.append(String(name)) }
      }
    }
    if !missing.isEmpty {
      return "package\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) not found in Debian \(base.suite) (the machine's apt sources)"
    }
    let errors = stderr.split(separator: "\n").filter { $0.hasPrefix("E:") }.suffix(3).joined(separator: " ")
    return "mmdebstrap could not build Debian \(base.suite): \(errors.isEmpty ? String(stderr.suffix(300)) : errors)"
  }

  /// The layer for `base`, built once: the path of its folder in the image folder. Two bakes
  /// needing one layer take turns (the second finds the first's).
  static func ensure(
    _ base: ImageRecipe.DebianBase, key: String, imageDirectory: String, machine: MachineApt, runner: ProcessRunner, lockTimeout: Double,
    onBuild: () -> Void
  ) throws -> (path: String, built: Bool) {
    let folder = try SafeFiles.directory(".layers", in: imageDirectory)
    let name = "debian-\(base.suite)-\(key.prefix(16))"
    let path = folder + "/" + name
    // A layer appears only by the rename of a complete build: a folder under its name is whole.
    if isLayer(path) { return (path, false) }
    let lock = try BakeLock.take("layer \(name)", imageDirectory: imageDirectory, timeout: lockTimeout) {}
    defer { withExtendedLifetime(lock) {} }
    if isLayer(path) { return (path, false) }
    onBuild()
    let partialName = ".\(name).\(getpid())"
    let partial = "\(folder)/\(partialName)"
    try? SafeFiles.remove(partialName, inFolder: ".layers", of: imageDirectory)
    defer { try? SafeFiles.remove(partialName, inFolder: ".layers", of: imageDirectory) }
    do {
      try runner.run(command(base, target: partial, machine: machine), timeout: 1800)
    } catch let d as Diagnostic {
      throw Diagnostic.error("bake.packages", explain(d.message, base: base), hint: "check the package names (apt-cache policy NAME on this machine)")
    }
    guard rename(partial, path) == 0 else {
      throw Diagnostic.error("bake.io", "cannot move the package layer into \(folder): \(String(cString: strerror(errno)))")
    }
    return (path, true)
  }

  /// A real folder (never a symlink) with something in it.
  static func isLayer(_ path: String) -> Bool {
    var st = stat()
    guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return false }
    return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).contains("etc")
  }
}
