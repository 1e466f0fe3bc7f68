import ArgumentParser
import DroverBasics
import DroverPlan
import Foundation

/// Selects which pools or nodes a plan covers.
struct TargetingOptions: ParsableArguments {
  @Option(name: .customLong("target"), help: "Only this pool or node (repeatable).", completion: NameCompletion.targets)
  var targets: [String] = []

  @Option(name: .customLong("exclude"), help: "Leave out this pool or node (repeatable).", completion: NameCompletion.targets)
  var excludes: [String] = []

  @Option(name: .customLong("replace"), help: "Replace this node even if its spec did not change (repeatable).", completion: NameCompletion.nodes)
  var replace: [String] = []

  @Flag(help: "Delete the nodes of pools no file in pools/ declares (protect honoured); without it they are kept and shown.")
  var prune = false

  @Flag(help: "Plan the other pools when a host cannot be read: the pools on it are left out whole (a warning names the host), never changed.")
  var skipUnreachable = false

  /// The same choices as plain values (option groups can only be built by the parser).
  var selection: Selection { Selection(targets: targets, excludes: excludes, replace: replace, prune: prune, skipUnreachable: skipUnreachable) }

  struct Selection {
    var targets: [String] = []
    var excludes: [String] = []
    var replace: [String] = []
    var prune = false
    var skipUnreachable = false
  }
}

/// `drover plan`: shows what apply would change, on which host, and why.
struct PlanCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract: "Show the changes that would make the hosts match the specs.",
    discussion: """
      Reads pools/ and images/, observes every host the pools name, and prints each action with \
      its reason. Nothing is changed. With --out the plan is saved; 'drover apply FILE' applies \
      exactly it, or refuses if the world or the specs changed since.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var targeting: TargetingOptions
  @OptionGroup var images: ImageOptions

  @Flag(help: "Print the plan as a versioned JSON document.")
  var json = false

  @Flag(help: "Exit 0 when there are no changes, 2 when there are changes, 1 on error.")
  var detailedExitcode = false

  @Option(help: "Save the plan to this file (for example plans/web.plan).")
  var out: String?

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    PhaseTimings.start()
    defer { PhaseTimings.report() }
    let context = try ProjectContext.load(project, imagePool: images.imagePool, keepAliveByDefault: false)
    let observed = context.observe()
    PhaseTimings.mark("observe")
    let (plan, diagnostics) = makePlan(
      pools: context.specs.poolSpecs, observed: observed, options: try context.planOptions(project, targeting: targeting.selection, images: images))
    PhaseTimings.mark("plan")
    defer { PhaseTimings.mark("output") }
    if json {
      Output.json(PlanFile.document(plan, diagnostics: diagnostics))
    } else {
      Output.out(PlanView.human(plan, color: project.color, complete: !diagnostics.hasErrors))
      if let transfers = TransferView.human(TransferView.transfers(plan, observed: observed, images: images)) { Output.out("\n" + transfers) }
    }
    // The JSON plan document holds its diagnostics; people read them under the plan.
    if diagnostics.hasErrors { throw CommandFailure(diagnostics, sources: context.sources, inDocument: json) }
    if !json { Report.diagnostics(diagnostics, sources: context.sources, format: .human, noColor: project.noColor) }
    if let out {
      try PlanFile.write(plan, diagnostics: diagnostics, to: out)
      if !json { Output.out("\nSaved the plan to \(out). Apply it with: drover apply \(out)") }
    }
    if detailedExitcode && plan.hasChanges { throw ExitCode(2) }
  }
}
