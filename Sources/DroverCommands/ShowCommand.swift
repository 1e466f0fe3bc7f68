import ArgumentParser
import DroverBasics
import DroverPlan
import Foundation

/// `drover show PLANFILE`: what a saved plan (a pipeline's artifact) will do, read from the file
/// alone — no host is contacted, so a reviewer can read it anywhere before approving it.
struct ShowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "show",
    abstract: "Show a saved plan: its project, the images it needs and every action.",
    discussion: """
      Reads only the file (no host is contacted). --json prints the same document 'drover plan \
      --json' prints and 'drover plan --out' saves. 'drover apply FILE' applies it after \
      checking that the project, specs, images and hosts are still what it was made from.
      """)

  @Argument(help: "A plan saved with 'drover plan --out'.", completion: .file(extensions: ["plan"]))
  var planFile: String

  @Flag(help: "Print the plan document as JSON.")
  var json = false

  func run() throws {
    let plan: Plan
    do { plan = try PlanFile.read(planFile) } catch {
      throw CommandFailure(Diagnostic.list(of: error, code: "plan.file"))
    }
    if json {
      Output.json(PlanFile.document(plan, diagnostics: []))
      return
    }
    // The file may have been edited by anyone: every line is made safe for the terminal (no
    // colour of its own, no escape sequence of the file's), so nothing in it can hide an action.
    let text = PlanView.header(plan, file: planFile) + "\n" + PlanView.human(plan, color: false)
    Output.out(text.split(separator: "\n", omittingEmptySubsequences: false).map { Terminal.printable(String($0)) }.joined(separator: "\n"))
  }
}
