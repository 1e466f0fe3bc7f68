import ArgumentParser
import DroverBasics
import DroverModel
import DroverPlan
import Foundation

/// `drover status`: every pool's nodes as they are now.
struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "List each pool's nodes: host, state, image, generation, and whether they differ from the spec.",
    discussion: "Read-only. A '*' in the PENDING column means 'drover plan' has an action for the node.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Flag(help: "Print JSON.")
  var json = false

  func run() throws {
    let context = try ProjectContext.load(project, readOnly: true, format: json ? .json : .human, imagePool: images.imagePool)
    let world = context.observe()
    let (plan, _) = makePlan(pools: context.specs.poolSpecs, observed: world, options: PlanOptions(project: project.projectName))
    let pending = Set(plan.actions.map(\.node))
    var rows: [[String: Any]] = []
    for (uri, host) in world.hosts.sorted(by: { $0.key < $1.key }) {
      for d in host.domains {
        guard let o = d.ownership, o.project == project.projectName else { continue }
        rows.append([
          "pool": o.pool, "node": d.name, "host": uri, "state": d.state, "image": o.image,
          "generation": o.generation, "pending": pending.contains(d.name),
        ])
      }
    }
    rows.sort { ($0["pool"] as! String, $0["node"] as! String) < ($1["pool"] as! String, $1["node"] as! String) }
    if json {
      Output.json(["format_version": "1.0", "nodes": rows, "unreachable": world.unreachable])
    } else {
      var lines = [["POOL", "NODE", "HOST", "STATE", "IMAGE", "GEN", "PENDING"]]
      for r in rows {
        lines.append([
          r["pool"] as! String, r["node"] as! String, r["host"] as! String, r["state"] as! String, r["image"] as! String,
          String(r["generation"] as! Int), (r["pending"] as! Bool) ? "*" : "",
        ])
      }
      Output.out(Table.render(lines))
      for (uri, reason) in world.unreachable.sorted(by: { $0.key < $1.key }) {
        Output.err("error: host \(uri): unreachable: \(reason)")
      }
    }
    if !world.unreachable.isEmpty { throw ExitCode.failure }
  }
}

/// Aligned plain-text columns.
enum Table {
  static func render(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    return rows.map { row in
      row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
        .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
  }
}
