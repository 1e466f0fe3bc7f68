import ArgumentParser
import DroverBasics
import DroverEngine
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

  @Argument(help: "The pool to unlock.")
  var pool: String

  func run() throws {
    let directory = project.stateDirectory + "/locks"
    if PoolLock.isHeld(pool: pool, directory: directory) {
      let who = PoolLock.holder(pool: pool, directory: directory).map { "pid \($0.pid) on \($0.host) ('\($0.command)')" }
        ?? "a running process"
      Output.err("error: pool \(pool) is locked by \(who), which is still running\nhint: wait for it or stop that process")
      throw ExitCode.failure
    }
    try? FileManager.default.removeItem(atPath: PoolLock.path(for: pool, in: directory))
    Output.out("pool \(pool) is unlocked")
  }
}
