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
