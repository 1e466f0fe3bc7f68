import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverPostgres
import Foundation

/// `drover state …`: where the project's shared state lives.
struct StateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "state", abstract: "Set up the project's shared state database, or move its rollout journal into it.",
    subcommands: [StateInitCommand.self, StateMigrateCommand.self])
}

/// `drover state init --admin-url …`: what a database administrator runs once per project (#40).
struct StateInitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "init",
    abstract: "Create the project's own database and role on a PostgreSQL server (for its administrator).",
    discussion: """
      Connects as the administrator of --admin-url (its password from DROVER_STATE_ADMIN_PASSWORD; \
      TLS as the machine configuration's state entry for that server says) and creates, when \
      missing, a login role and a database it owns, both drover_<project>, with the database \
      closed to every other role. The new role's password is DROVER_STATE_NEW_PASSWORD, or one \
      made here and printed once. Running it again changes nothing but closing the database \
      again. Prints the state.url for drover.yaml.
      """)

  @OptionGroup var project: ProjectOptions
  @Option(help: "The server as its administrator: postgres://ADMIN@HOST:PORT/postgres.") var adminURL: String

  func run() throws {
    let project = try LoadedProject(self.project)
    try project.requireName()
    let environment = ProcessInfo.processInfo.environment
    let (trust, warnings) = StateCredentials.trust(url: adminURL, machine: project.machine)
    if !warnings.isEmpty { Report.diagnostics(warnings, sources: [], format: .human, noColor: project.noColor) }
    let generated = environment["DROVER_STATE_NEW_PASSWORD"] == nil
    let password = environment["DROVER_STATE_NEW_PASSWORD"] ?? PostgresProjectDatabase.newPassword()
    let name = PostgresProjectDatabase.names(project: project.projectName)
    let outcome = try PostgresProjectDatabase.initialize(
      adminURL: adminURL, adminPassword: environment["DROVER_STATE_ADMIN_PASSWORD"], trust: trust, role: name, database: name,
      rolePassword: password, timeout: project.connectTimeout, callTimeout: project.callTimeout)
    Output.out("role \(outcome.role): \(outcome.createdRole ? "created" : "exists (its password unchanged)")")
    Output.out("database \(outcome.database): \(outcome.createdDatabase ? "created" : "exists"), owned by \(outcome.role), closed to every other role")
    if outcome.createdRole && generated {
      Output.out("password of \(outcome.role) (shown once; put it in each machine's password_file or DROVER_STATE_PASSWORD): \(password)")
    }
    Output.out("drover.yaml: state: {backend: postgres, url: \"\(outcome.url)\"}")
  }
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
    let project = try LoadedProject(self.project)
    try project.requireName()
    let state = try project.stateStore()
    guard let shared = try state.backend() else {
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
    var failures: [Diagnostic] = []
    for pool in pools {
      do {
        let command = CommandLine.arguments.joined(separator: " ")
        // Both locks: the database's (no shared apply runs) and the source folder's (no apply
        // still on the local state appends to the journal being copied).
        let lock = try PoolLock.acquire(pool: pool, directory: project.stateDirectory + "/locks", command: command, timeout: 0, state: state)
        let localLock = try PoolLock.acquire(pool: pool, directory: source + "/locks", command: command, timeout: 0, state: .local)
        defer { withExtendedLifetime((lock, localLock)) {} }
        let keyring = Keyring(project: project.projectName, key: try ProjectKeyStore.load(project: project.projectName, stateDirectory: project.stateDirectory))
        guard let key = keyring.key else {
          throw Diagnostic.error(
            "records.no-key", "this machine has no key for project \(project.projectName): the journal it copies is sealed with it",
            subject: "pool \(pool)", hint: "import the key (drover key import, or DROVER_PROJECT_KEY)")
        }
        let journal = try RolloutJournal(directory: folder, pool: pool, keyring: keyring, state: .local)
        if let damage = journal.damage { JournalDamage.report(damage) }
        // Verified as read, then every record sealed anew (records an older Drover wrote
        // unsealed included): the database's journal is sealed from its first row.
        _ = try journal.checkedRollouts()
        let seal = JournalSeal(key)
        let records = journal.records().map { JournalIntegrity.seal($0, with: seal, pool: pool, prefix: "") }
        try shared.importJournal(pool: pool, records: records)
        Output.out("pool \(pool): \(records.count) record\(records.count == 1 ? "" : "s") copied into \(shared.location)")
      } catch {
        failures += Diagnostic.list(of: error, code: "state.migrate", subject: "pool \(pool)")
      }
    }
    // Every pool was tried; the ones that failed are said once, at the edge.
    if !failures.isEmpty { throw CommandFailure(failures) }
  }
}
