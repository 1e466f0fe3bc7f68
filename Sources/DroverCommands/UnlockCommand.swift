import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverSpec
import Foundation

/// `drover unlock`: clears a pool's lock record when no process holds it.
struct UnlockCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unlock",
    abstract: "Remove a pool's lock file when no running apply holds it.",
    discussion: """
      Locks are kernel file locks released when their holder exits, even by kill -9, so a lock \
      left by a dead process never blocks an apply. This command refuses while a live process \
      holds the lock and names it.
      """)

  @OptionGroup var project: ProjectOptions

  @Argument(help: "The pool to unlock.", completion: NameCompletion.pools)
  var pool: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check([pool], project: project, state: state)
    let directory = project.stateDirectory + "/locks"
    if PoolLock.isHeld(pool: pool, directory: directory, state: state) {
      let who = PoolLock.holder(pool: pool, directory: directory, state: state).map { "pid \($0.pid) on \($0.host) ('\($0.command)')" }
        ?? "a running process"
      throw Diagnostic.error("apply.lock-held", "pool \(pool) is locked by \(who), which is still running", hint: "wait for it or stop that process")
    }
    try? FileManager.default.removeItem(atPath: PoolLock.path(for: pool, in: directory))
    Output.out("pool \(pool) is unlocked")
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
