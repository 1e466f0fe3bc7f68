import ArgumentParser
import DroverBasics
import DroverEngine
import DroverRollout
import Foundation

/// `drover rollout show [ID]`: one rollout's timeline from its journal — per node, per step, how
/// long each took and how it ended, the waves and the rollback — as text, or drawn as an SVG.
struct RolloutShowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "show", abstract: "A rollout's timeline: per node each step, its duration and outcome (--svg draws it).",
    discussion: """
      Without an ID, the latest rollout of the project (or of --pool). The journal is read where \
      the state is (this machine, or the shared database); no host is contacted.
      """)

  @OptionGroup var project: ProjectOptions
  @Argument(help: "The rollout ID (drover rollout history lists them; default: the latest).", completion: NameCompletion.rollouts)
  var id: String?
  @Option(help: "Only this pool's rollouts (for the latest).", completion: NameCompletion.pools) var pool: String?
  @Option(help: "Also draw the timeline into this SVG file: a row per node, a bar per step coloured by outcome, waves and the budget line marked.")
  var svg: String?

  func run() throws {
    let project = try LoadedProject(self.project)
    let state = try project.stateStore()
    try KnownPools.check(pool.map { [$0] } ?? [], project: project, state: state)
    let journals = RolloutJournals(project, state: state)
    var found: (RolloutState, [JournalRecord])?
    for name in try pool.map({ [$0] }) ?? journals.pools() {
      let journal = try journals.journal(name)
      let rollouts = try journal.checkedRollouts()
      let pick = id.map { wanted in rollouts.first { $0.id == wanted } } ?? rollouts.last
      guard let state = pick else { continue }
      if id != nil || found.map({ state.started > $0.0.started }) ?? true { found = (state, journal.records()) }
      if id != nil { break }
    }
    guard let (state, records) = found, let timeline = RolloutTimeline.make(records, state: state) else {
      throw Diagnostic.error(
        "rollout.unknown", id.map { "no rollout \(Terminal.printable($0)) in the project's journals" } ?? "the project has no rollout yet",
        hint: "drover rollout history lists the rollouts")
    }
    Output.out(RolloutTimelineView.text(timeline))
    let analysis = AnalysisView.text(state)
    if !analysis.isEmpty { Output.out(analysis.joined(separator: "\n")) }
    if let svg {
      do { try Data(RolloutTimelineView.svg(timeline).utf8).write(to: URL(fileURLWithPath: svg), options: .atomic) } catch {
        throw Diagnostic.error("rollout.svg", "cannot write the SVG: \(Diagnostic.line(of: error))", subject: svg, hint: "choose a writable path for --svg")
      }
      Output.out("\nDrew the timeline into \(svg).")
    }
  }
}
