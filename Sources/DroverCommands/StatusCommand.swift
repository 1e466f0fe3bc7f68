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

  @Option(name: .shortAndLong, help: "wide: also each running node's IPv4 addresses, from DHCP leases or the node's guest agent.")
  var output: StatusLayout?

  enum StatusLayout: String, ExpressibleByArgument { case wide }

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    // libvirt asks a guest agent only over a read-write connection (virDomainInterfaceAddresses
    // refuses the agent source on a read-only one); status still changes nothing.
    let context = try ProjectContext.load(
      project, readOnly: output != .wide, imagePool: images.imagePool, keepAliveByDefault: false)
    let world = context.observe()
    let (plan, _) = makePlan(pools: context.specs.poolSpecs, observed: world, options: PlanOptions(project: project.projectName))
    let pending = Set(plan.actions.map(\.node))
    var rows: [[String: Any]] = []
    for (uri, host) in world.hosts.sorted(by: { $0.key < $1.key }) {
      for d in host.domains {
        guard let o = d.ownership, o.project == project.projectName else { continue }
        var row: [String: Any] = [
          "pool": o.pool, "node": d.name, "host": uri, "state": d.state, "image": o.image,
          "generation": o.generation, "pending": pending.contains(d.name), "role": o.kept == nil ? "serving" : "kept",
        ]
        if let kept = o.kept {
          row["kept_until"] = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: kept.until))
          row["kept_state"] = (kept.state ?? .stopped).rawValue
        }
        rows.append(row)
      }
    }
    rows.sort { ($0["pool"] as! String, $0["node"] as! String) < ($1["pool"] as! String, $1["node"] as! String) }
    if output == .wide {
      // One lookup per running node, a few at once: each is a round trip to its host.
      let backends = context.backends
      let found = BlockingFanOut.map(rows.count, width: 8) { i -> [(address: String, source: String)] in
        let row = rows[i]
        guard row["state"] as? String == "running", let uri = row["host"] as? String, let node = row["node"] as? String,
          let backend = backends[uri]
        else { return [] }
        return backend.addresses(of: node)
      }
      for i in rows.indices { rows[i]["addresses"] = found[i].map { ["address": $0.address, "source": $0.source] } }
    }
    if json {
      Output.json(["format_version": "1.0", "nodes": rows, "unreachable": world.unreachable])
    } else {
      let wide = output == .wide
      var lines = [["POOL", "NODE", "HOST", "STATE", "IMAGE", "GEN", "PENDING"] + (wide ? ["ADDRESSES"] : [])]
      for r in rows {
        var line = [
          r["pool"] as! String, r["node"] as! String, r["host"] as! String,
          (r["role"] as? String == "kept" ? "kept \(r["kept_state"] as? String ?? "stopped") until \(r["kept_until"] as? String ?? "?")" : r["state"] as! String), r["image"] as! String,
          String(r["generation"] as! Int), (r["pending"] as! Bool) ? "*" : "",
        ]
        if wide {
          let addresses = (r["addresses"] as? [[String: String]]) ?? []
          line.append(addresses.isEmpty ? "-" : addresses.map { "\($0["address"] ?? "") (\($0["source"] ?? ""))" }.joined(separator: ", "))
        }
        lines.append(line)
      }
      Output.out(Table.render(lines))
    }
    // The JSON document names the unreachable hosts itself; people read them under the table.
    if !world.unreachable.isEmpty { throw CommandFailure(Unreachable.diagnostics(world.unreachable, saying: "unreachable"), inDocument: json) }
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
