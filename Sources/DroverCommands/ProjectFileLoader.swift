import DroverBasics
import DroverModel
import DroverSpec
import Foundation
import Synchronization

/// Reads `drover.yaml` of a project folder (a missing file is no error: commands that need a
/// project name say so themselves).
enum ProjectFileLoader {
  static func read(dir: String) -> (ProjectSettings?, [Diagnostic], [SpecSource]) {
    let path = dir + "/" + ProjectFile.name
    guard FileManager.default.fileExists(atPath: path) else { return (nil, [], []) }
    let (sources, readProblems) = SpecFiles.read([path])
    guard let source = sources.first else { return (nil, readProblems, []) }
    let project = SpecSource(path: source.path, kind: .project, bytes: source.bytes)
    let (settings, problems) = ProjectFile.decode(project)
    return (settings, readProblems + problems, [project])
  }
}

/// The project file this process read (one project per process), for the option groups that
/// take their defaults from it.
enum CurrentProject {
  private static let held = Mutex<(settings: ProjectSettings?, dir: String)>((nil, "."))

  static func set(_ settings: ProjectSettings?, dir: String = ".") { held.withLock { $0 = (settings, dir) } }
  static var settings: ProjectSettings? { held.withLock { $0.settings } }
  /// The project folder, absolute (what specs may name host files in).
  static var absoluteDir: String { absolute(held.withLock { $0.dir }) }

  /// A project folder as an absolute path, links resolved when it exists.
  static func absolute(_ dir: String) -> String {
    SafeFiles.realPath(dir) ?? (dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir)
  }
  /// A path from drover.yaml: relative ones are inside the project folder.
  static func path(_ value: String?) -> String? {
    guard let value else { return nil }
    return value.hasPrefix("/") ? value : held.withLock { $0.dir } + "/" + value
  }
}
