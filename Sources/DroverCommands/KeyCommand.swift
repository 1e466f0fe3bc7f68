import ArgumentParser
import DroverBasics
import DroverEngine
import Foundation

/// `drover key export|import`: moves the project's record key between machines.
struct KeyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "key",
    abstract: "Export or import the project's record key.",
    discussion: """
      Every ownership record Drover writes is sealed (HMAC-SHA-256) with the project key, kept in \
      the project's state folder, never in the repository. A machine without the key can plan \
      and check drift (advisory) but apply changes nothing. 'drover key export' prints the key \
      as one line; 'drover key import' reads that line from standard input; DROVER_PROJECT_KEY \
      may hold it instead (for CI).
      """,
    subcommands: [KeyExportCommand.self, KeyImportCommand.self])
}

struct KeyExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "export", abstract: "Print the project key as one line (keep it secret).")

  @OptionGroup var project: ProjectOptions

  func run() throws {
    let project = try LoadedProject(self.project)
    try project.requireName()
    let key: RecordKey?
    key = try ProjectKeyStore.load(project: project.projectName, stateDirectory: project.stateDirectory)
    guard let key else {
      throw Diagnostic.error(
        "key.missing", "this machine has no key for project \(project.projectName)", subject: ProjectKeyStore.path(in: project.stateDirectory),
        hint: "the first apply of a new project creates it; otherwise import it from a machine that has it")
    }
    Output.out(key.exported)
  }
}

struct KeyImportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import", abstract: "Store the key read from standard input as the project key (refuses to replace another).")

  @OptionGroup var project: ProjectOptions

  func run() throws {
    let project = try LoadedProject(self.project)
    try project.requireName()
    var text = ""
    while let line = readLine(strippingNewline: false), text.utf8.count <= 4096 { text += line }
    do {
      let key = try ProjectKeyStore.check(RecordKey.parse(text), project: project.projectName, source: "standard input")
      let lock = try ProjectLock.acquire(project, timeout: 10, state: try project.stateStore())
      defer { withExtendedLifetime(lock) {} }
      try ProjectKeyStore.store(key, stateDirectory: project.stateDirectory)
      Output.out("Imported the key of project \(project.projectName) (id \(key.id)) into \(ProjectKeyStore.path(in: project.stateDirectory))")
    } catch {
      throw CommandFailure(Diagnostic.list(of: error, code: "key"))
    }
  }
}
