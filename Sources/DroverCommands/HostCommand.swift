import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import Foundation

/// `drover host`: the project's hosts, their room, and maintenance (cordon, drain, uncordon).
struct HostCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "host", abstract: "Show the project's hosts and their room; cordon, drain and uncordon one.",
    discussion: """
      A cordon is recorded on the host itself (a marker in Drover's image pool there), so every \
      machine and CI runner that plans the project sees it: a cordoned host gets no new nodes. \
      drain cordons the host and moves every node of the project there to another host of its \
      pool through the rollout engine (new node first, health-checked, then the old one is \
      cordoned, drained and removed), journaled: after a crash, run it again.
      """,
    subcommands: [HostListCommand.self, HostCordonCommand.self, HostUncordonCommand.self, HostDrainCommand.self])
}

/// Which host a command line names: an entry name (drover.yaml, then the machine's
/// configuration) or a URI; it must be one this project reads.
enum HostArgument {
  static func resolve(_ text: String, context: ProjectContext) throws -> String {
    let directory = context.project.hostDirectory
    let uri = directory.uri(named: text) ?? text
    guard context.backends[uri] != nil || context.unreachable[uri] != nil else {
      let known = Set(context.backends.keys).union(context.unreachable.keys).sorted()
      throw Diagnostic.error(
        "host.unknown", "'\(Terminal.escaped(text))' is not a host of this project", subject: "host \(Terminal.escaped(text))",
        hint: known.isEmpty ? "no pool names a host yet" : "one of: \(known.joined(separator: ", ")) (or its entry name in drover.yaml)")
    }
    if let why = context.unreachable[uri] {
      throw Diagnostic.error("libvirt.unreachable", "host \(uri) could not be read: \(why)", subject: "host \(uri)", hint: "check the host, then run it again")
    }
    return uri
  }

  /// The image folder of Drover's pool on `uri` (its entry's own, else this machine's).
  static func imageDir(_ uri: String, images: ImagePaths) -> String {
    images.project.hostDirectory.entry(for: uri)?.imageDir ?? images.imageDir
  }

  static func fail(_ error: Error) -> CommandFailure {
    CommandFailure(Diagnostic.list(of: error, code: "host"))
  }
}

struct HostListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "Each host: cordoned or not, CPUs and memory given to its domains against what its ratios allow, pool space, nodes.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let context = try ProjectContext.load(project, readOnly: true, imagePool: images.imagePool)
    let world = context.observe()
    let ledger = CapacityLedger(observed: world, limits: context.hostLimits, project: project.projectName)
    let names = Dictionary(project.hosts.map { ($0.uri, $0.name) }, uniquingKeysWith: { a, _ in a })
    let rows = HostView.rows(world: world, ledger: ledger, names: names, project: project.projectName)
    if json {
      Output.jsonLine(["format_version": "1.0", "hosts": rows])
    } else {
      Output.out(HostView.table(rows))
    }
    // Each unreachable host is a row of the table (and of the JSON) with its reason.
    if !world.unreachable.isEmpty { throw CommandFailure(Unreachable.diagnostics(world.unreachable, saying: "unreachable"), inDocument: true) }
  }
}

struct HostCordonCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "cordon", abstract: "Give a host no new nodes (its nodes stay).")
  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The host: its entry name in drover.yaml or its URI.") var host: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let context = try ProjectContext.load(project, imagePool: images.imagePool)
    do {
      let uri = try HostArgument.resolve(host, context: context)
      try context.backends[uri]?.setCordon(true, imagePool: images.imagePool, directory: HostArgument.imageDir(uri, images: images))
      Output.out("host \(uri) is cordoned: it gets no new nodes (drover host uncordon \(host) lets them back)")
    } catch { throw HostArgument.fail(error) }
  }
}

struct HostUncordonCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "uncordon", abstract: "Let a cordoned host get new nodes again.")
  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The host: its entry name in drover.yaml or its URI.") var host: String

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let context = try ProjectContext.load(project, imagePool: images.imagePool)
    do {
      let uri = try HostArgument.resolve(host, context: context)
      try context.backends[uri]?.setCordon(false, imagePool: images.imagePool, directory: HostArgument.imageDir(uri, images: images))
      Output.out("host \(uri) is uncordoned: new nodes may go there again (nodes moved away stay where they are)")
    } catch { throw HostArgument.fail(error) }
  }
}

struct HostDrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drain", abstract: "Cordon a host and move every node of the project there to another host, through the rollout engine.",
    discussion: "Shows the moves and asks for 'yes' (or --auto-approve). Journaled per pool: after a crash or Ctrl-C, run it again (or drover rollout resume POOL).")
  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions
  @Argument(help: "The host: its entry name in drover.yaml or its URI.") var host: String
  @Flag(help: "Move without asking (for CI).") var autoApprove = false
  @Option(help: "How long to wait for another apply's lock on a pool, e.g. 30s or 5m.") var lockTimeout: String = "0s"

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else { throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 5m") }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let context = try ProjectContext.load(project, imagePool: images.imagePool)
    let uri: String
    let pools: [String]
    do {
      uri = try HostArgument.resolve(host, context: context)
      try context.backends[uri]?.setCordon(true, imagePool: images.imagePool, directory: HostArgument.imageDir(uri, images: images))
      let journaled = try JournaledRollouts.read(pools: context.specs.poolSpecs, stateDirectory: project.stateDirectory, keyring: context.keyring, state: context.state) {
        JournalDamage.report($0)
      }
      let scope = ApplyJob.drainScope(
        host: uri, observed: context.observe(), project: project.projectName, declared: Set(context.specs.poolSpecs.map(\.name)),
        active: Set(journaled.active.keys))
      pools = scope.pools
      let undeclared = scope.undeclared
      if !undeclared.isEmpty {
        Output.err("warning: nodes of pools no file declares stay on \(uri) (\(undeclared.joined(separator: ", "))): drover apply --prune removes them")
      }
    } catch { throw HostArgument.fail(error) }
    Output.out("host \(uri) is cordoned")
    guard !pools.isEmpty else {
      Output.out("No node of project \(project.projectName) is on \(uri): nothing to move.")
      return
    }
    try ApplyWiring(project: project, images: images, json: false).run(
      ApplyRequest(kind: .hostDrain, targets: pools, lockTimeout: DurationArgument.seconds(lockTimeout) ?? 0, draining: [uri]),
      approver: autoApprove ? AutoApprove() : TerminalApprover())
  }
}
