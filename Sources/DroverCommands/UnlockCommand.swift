import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverSpec
import Foundation

/// `drover unlock`: clears a pool's lock record when no process holds it; on a shared state, ends
/// the database session of a holder whose lease ran out (#41), after a person confirms.
struct UnlockCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unlock",
    abstract: "Remove a pool's lock when no live process holds it.",
    discussion: """
      Locks are kernel file locks released when their holder exits, even by kill -9, so a lock \
      left by a dead process never blocks an apply. This command refuses while a live process \
      holds the lock and names it.

      With a shared state database, a lock lives on its holder's database session, which the \
      holder renews (state.lease): a killed holder's lock is freed at once, a frozen or cut-off \
      one's when its lease runs out. This command names the holder and its lease; a holder still \
      holding the lock after its lease ran out (a session stuck in a statement) is ended after you \
      confirm (or with --yes): its session is terminated and its locks go with it.
      """)

  @OptionGroup var project: ProjectOptions

  @Flag(help: "End an expired holder's database session without asking.") var yes = false

  @Argument(help: "The pool to unlock.", completion: NameCompletion.pools)
  var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    let directory = project.stateDirectory + "/locks"
    if let shared = try state.backend() {
      return try unlockShared(shared)
    }
    if PoolLock.isHeld(pool: pool, directory: directory, state: state) {
      let who = PoolLock.holder(pool: pool, directory: directory, state: state).map { "pid \($0.pid) on \($0.host) ('\($0.command)')" }
        ?? "a running process"
      throw Diagnostic.error("apply.lock-held", "pool \(pool) is locked by \(who), which is still running", hint: "wait for it or stop that process")
    }
    try? FileManager.default.removeItem(atPath: PoolLock.path(for: pool, in: directory))
    Output.out("pool \(pool) is unlocked")
  }

  func unlockShared(_ shared: any SharedStateBackend) throws {
    guard let lease = try shared.lockLease(name: pool) else {
      Output.out("pool \(pool) is not locked (in \(shared.location))")
      return
    }
    let who = PoolLock.describe(lease.holder) + (lease.token.map { ", fencing token \($0)" } ?? "")
    let renewed = lease.renewedAgo.map { String(format: "renewed %.1f s ago", $0) } ?? "never renewed"
    let term = lease.lease.map { String(format: "a lease of %.0f s", $0) } ?? "no lease (an older Drover)"
    guard lease.expired else {
      throw Diagnostic.error(
        "apply.lock-held", "pool \(pool) is locked by \(who), whose lease is live (\(term), \(renewed))", subject: "pool \(pool)",
        hint: "wait for it or stop that process; a holder that is frozen or cut off loses the lock when its lease runs out")
    }
    Output.out("pool \(pool) is locked by \(who), whose lease ran out (\(term), \(renewed)): its database session is stuck or gone.")
    if !yes {
      guard isatty(STDIN_FILENO) != 0 else {
        throw Diagnostic.error(
          "unlock.confirm", "standard input is not a terminal, so unlock cannot ask before ending that session", subject: "pool \(pool)",
          hint: "run it at a terminal, or pass --yes")
      }
      Output.out("End that database session (its locks go with it)? Only 'yes' will be accepted: ", terminator: "")
      guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
        Output.out("nothing was done")
        return
      }
    }
    guard try shared.endExpiredHolder(name: pool, session: lease.session) else {
      throw Diagnostic.error(
        "apply.lock-held", "pool \(pool)'s holder changed or renewed its lease meanwhile; nothing was ended", subject: "pool \(pool)",
        hint: "run drover unlock \(pool) again to see who holds it now")
    }
    Output.out("ended database session \(lease.session) of \(who); pool \(pool) is unlocked")
  }
}

/// The pools a command may name: declared in pools/, or with a journal or a lock file. A name
/// that is none of these is an error listing the real ones (never a silent "unlocked" or
/// "no rollout"), and a name that is not a pool name at all (`../x`) never reaches a path.
enum KnownPools {
  static func names(_ project: LoadedProject, state: StateStore) -> Set<String> {
    var names: Set<String> = []
    let (sources, _) = SpecFiles.read([project.poolsPath].filter { FileManager.default.fileExists(atPath: $0) })
    names.formUnion(SpecLoader.load(sources, machine: project.machine, projectFolder: project.absoluteDir, hosts: project.hosts).0.poolSpecs.map(\.name))
    for (folder, suffix) in [("journal", ".jsonl"), ("locks", ".lock")] {
      let files = (try? FileManager.default.contentsOfDirectory(atPath: project.stateDirectory + "/" + folder)) ?? []
      names.formUnion(files.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) })
    }
    // Pools with a journal in the shared state database (a fresh runner has no local folder).
    if state.isShared, let shared = try? state.backend(), let pools = try? shared.journalPools() {
      names.formUnion(pools.filter { PoolName.isValid($0) })
    }
    return names
  }

  static func check(_ pools: [String], project: LoadedProject, state: StateStore) throws {
    let known = names(project, state: state)
    let unknown = pools.filter { !known.contains($0) || !PoolName.isValid($0) }
    guard !unknown.isEmpty else { return }
    throw Diagnostic.error(
      "cli.unknown-pool", "no pool named \(unknown.map { "'\(Terminal.printable($0))'" }.joined(separator: ", ")) in this project",
      subject: project.dir, hint: known.isEmpty ? "this project declares no pools" : "pools: \(known.sorted().joined(separator: ", "))")
  }
}
