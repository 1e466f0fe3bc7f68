import ArgumentParser
import DroverBasics
import DroverEngine
import DroverModel
import DroverPlan
import Foundation

/// `drover adopt`: takes over, on purpose, a domain whose record Drover refuses to act on.
struct AdoptCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "adopt",
    abstract: "Take over a domain whose record does not verify (a clone, a copy, an edited record).",
    discussion: """
      Drover never acts on a record that is not sealed with the project key for that very \
      domain; plan reports such a domain as record-mismatch. If it really is the node it claims \
      to be (you restored it, or edited its record on purpose), adopt seals a new record for it: \
      the domain must be named as a node of a declared pool (web-2), sit on one of its hosts, and \
      no other node may be that node. The next plan then treats it like any node.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "The domain's name.", completion: NameCompletion.nodes)
  var domain: String

  @Option(help: "The host (libvirt URI as the pool file names it) when domains of that name are on several.")
  var host: String?

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let context = try ProjectContext.load(project, imagePool: images.imagePool)
    guard context.keyring.key != nil else {
      throw Diagnostic.error(
        "records.no-key", "this machine has no key for project \(project.projectName): nothing can be sealed",
        subject: "project \(project.projectName)", hint: "drover key import (or DROVER_PROJECT_KEY) first")
    }
    let outcome: Result<Adoption.Decision, Diagnostic>
    do {
      let lock = try ProjectLock.acquire(project, timeout: 10, state: context.state)
      // And the pool's lock: no apply may create the same node elsewhere meanwhile.
      let poolName = domain.lastIndex(of: "-").map { String(domain[..<$0]) } ?? ""
      let poolLock = PoolName.isValid(poolName) && context.specs.poolSpecs.contains { $0.name == poolName }
        ? try PoolLock.acquire(pool: poolName, directory: project.stateDirectory + "/locks", command: CommandLine.arguments.joined(separator: " "), timeout: 10, state: context.state)
        : nil
      defer { withExtendedLifetime((lock, poolLock)) {} }
      outcome = Adopter.adopt(
        name: domain, host: host, pools: context.specs.poolSpecs, observed: context.observe(), project: project.projectName,
        backends: context.backends.mapValues { $0 }, pins: try ApplyWiring.nodeSSH(project, keyring: context.keyring, pools: context.specs.poolSpecs),
        fence: Fence([lock] + (poolLock.map { [$0] } ?? [])))
    } catch {
      throw CommandFailure(Diagnostic.list(of: error, code: "adopt"))
    }
    switch outcome {
    case .failure(let problem):
      throw problem
    case .success(let d):
      Output.out("Adopted \(domain) on \(d.host) (UUID \(d.uuid)) as node \(d.record.index) of pool \(d.record.pool). Run 'drover plan' to see what it needs.")
    }
  }
}
