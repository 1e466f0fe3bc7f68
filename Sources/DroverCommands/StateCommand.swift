import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import Foundation

/// `drover state …`: where the project's shared state lives.
struct StateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "state", abstract: "Move the project's rollout journal into its shared state database.", subcommands: [StateMigrateCommand.self])
}

/// `drover state migrate --to postgres`: copies each pool's local journal (history, and a rollout
/// in progress) into the database drover.yaml names, once, under each pool's lock.
struct StateMigrateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "migrate",
    abstract: "Copy the local rollout journals into the state database of drover.yaml.",
    discussion: """
      Set state: {backend: postgres, url: …} in drover.yaml first; the password comes from \
      DROVER_STATE_PASSWORD. Each pool's journal is copied as it is (its records' numbers and \
      times), in one transaction, while the pool's lock is held in the database and in the local folder; a pool that already has a \
      journal in the database is refused and left as it is. The local files are not removed.
      """)

  @OptionGroup var project: ProjectOptions
  @Option(help: "The backend to copy into (postgres).") var to: String
  @Option(help: "The local state folder to copy from (default: the machine's state folder of the project).") var from: String?

  func validate() throws {
    guard to == "postgres" else { throw ValidationError("--to must be postgres") }
  }

  func run() throws {
    try project.requireName()
    guard let shared = try SharedState.backend() else {
      throw Diagnostic.error(
        "spec.state.backend", "drover.yaml keeps the state locally; there is no database to migrate to",
        hint: "set state: {backend: postgres, url: postgres://USER@HOST/DB} first")
    }
    let source = from ?? ProjectSettings.defaultStateDirectory(project: project.projectName)
    let folder = source + "/journal"
    let pools = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(6)) }
      .filter { PoolName.isValid($0) }.sorted()
    guard !pools.isEmpty else {
      Output.out("No local journal in \(folder): nothing to copy.")
      return
    }
    var failed = 0
    for pool in pools {
      do {
        let command = CommandLine.arguments.joined(separator: " ")
        // Both locks: the database's (no shared apply runs) and the source folder's (no apply
        // still on the local state appends to the journal being copied).
        let lock = try PoolLock.acquire(pool: pool, directory: project.stateDirectory + "/locks", command: command, timeout: 0)
        let localLock = try PoolLock.acquire(pool: pool, directory: source + "/locks", command: command, timeout: 0, local: true)
        defer { withExtendedLifetime((lock, localLock)) {} }
        let keyring = Keyring(project: project.projectName, key: try ProjectKeyStore.load(project: project.projectName, stateDirectory: project.stateDirectory))
        guard let key = keyring.key else {
          throw Diagnostic.error(
            "records.no-key", "this machine has no key for project \(project.projectName): the journal it copies is sealed with it",
            subject: "pool \(pool)", hint: "import the key (drover key import, or DROVER_PROJECT_KEY)")
        }
        let journal = try RolloutJournal(directory: folder, pool: pool, local: true, keyring: keyring)
        if let damage = journal.damage { JournalDamage.report(damage) }
        // Verified as read, then every record sealed anew (records an older Drover wrote
        // unsealed included): the database's journal is sealed from its first row.
        _ = try journal.checkedRollouts()
        let seal = JournalSeal(key)
        let records = journal.records().map { JournalIntegrity.seal($0, with: seal, pool: pool, prefix: "") }
        try shared.importJournal(pool: pool, records: records)
        Output.out("pool \(pool): \(records.count) record\(records.count == 1 ? "" : "s") copied into \(shared.location)")
      } catch {
        failed += 1
        Report.diagnostics((error as? DiagnosticConvertible)?.diagnostics ?? [.error("state.migrate", "\(error)")], sources: [], format: .human, noColor: project.noColor)
      }
    }
    if failed > 0 { throw ExitCode.failure }
  }
}
