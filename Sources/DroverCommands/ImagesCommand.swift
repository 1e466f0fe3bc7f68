import ArgumentParser
import DroverBake
import DroverBasics
import DroverModel
import DroverPlan
import Foundation

/// `drover images`: the local image catalogue.
struct ImagesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "images",
    abstract: "List baked images with their digest, size, creation time and the nodes that use them.",
    subcommands: [ImagesListCommand.self, ImagesGCCommand.self], defaultSubcommand: ImagesListCommand.self)
}

/// Which images are in use: by a pool's spec, by a node, or as the previous image of a pool.
enum ImageUsage {
  /// Nil when a host could not be read: then which images are in use is not known.
  static func nodesByKey(_ context: ProjectContext, project: String) -> [String: [String]]? {
    let world = context.observe()
    guard world.unreachable.isEmpty else { return nil }
    var result: [String: [String]] = [:]
    for host in world.hosts.values {
      for d in host.domains {
        if let o = d.ownership, o.project == project, !o.digest.isEmpty { result[o.digest, default: []].append(d.name) }
      }
    }
    return result.mapValues { $0.sorted() }
  }
}

struct ImagesListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "list", abstract: "List baked images.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Flag(help: "Print JSON.")
  var json = false

  func run() throws {
    let catalogue = images.catalogue
    let context = try? ProjectContext.load(project, readOnly: true)
    let used = context.flatMap { ImageUsage.nodesByKey($0, project: project.projectName) } ?? [:]
    let formatter = ISO8601DateFormatter()
    let rows = catalogue.manifests.sorted { ($0.name, $0.created) < ($1.name, $1.created) }
    if json {
      Output.json([
        "format_version": "1.0",
        "images": rows.map {
          [
            "name": $0.name, "version": $0.version, "key": $0.key, "artifact": $0.artifact, "sha256": $0.artifactSHA256,
            "size_bytes": $0.sizeBytes, "created": formatter.string(from: $0.created), "used_by": used[$0.key] ?? [],
          ] as [String: Any]
        },
      ])
      return
    }
    var table = [["NAME", "VERSION", "DIGEST", "SIZE", "CREATED", "USED BY"]]
    for m in rows {
      table.append([
        m.name, m.version, m.shortKey, ByteSize(bytes: m.sizeBytes / 1024 * 1024).description,
        formatter.string(from: m.created), (used[m.key] ?? []).joined(separator: ",").ifEmpty("-"),
      ])
    }
    Output.out(Table.render(table))
  }
}

struct ImagesGCCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gc",
    abstract: "Delete images no pool references and no node uses, keeping each pool's previous image.",
    discussion: "An image in use is never deleted. --dry-run shows what would go.")

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Flag(help: "Only show what would be deleted.")
  var dryRun = false

  func run() throws {
    let catalogue = images.catalogue
    let context = try ProjectContext.load(project, readOnly: true)
    if !context.unreachable.isEmpty {
      Output.err("error: cannot see every host (\(context.unreachable.keys.sorted().joined(separator: ", "))), so cannot tell which images are in use; nothing deleted")
      throw ExitCode.failure
    }
    guard let inUse = ImageUsage.nodesByKey(context, project: project.projectName) else {
      Report.diagnostics(
        [.error("libvirt.unreachable", "a host could not be read, so which images are in use is not known; nothing deleted", hint: "run drover plan to see which host, and try again once it answers")],
        sources: [], format: .human, noColor: project.noColor)
      throw ExitCode.failure
    }
    let keep = ImageGC.keep(
      catalogue: catalogue, pools: context.specs.poolSpecs, inUse: Set(inUse.keys),
      overlayBackings: ImageGC.overlayBackings(in: catalogue.directory))
    var removed = 0
    for m in catalogue.manifests where !keep.contains(m.key) {
      Output.out("\(dryRun ? "would delete" : "deleting") \(m.reference) (\(m.shortKey), \(m.artifact))")
      if !dryRun { ImageGC.delete(m, in: catalogue.directory) }
      removed += 1
    }
    Output.out("\(removed) image\(removed == 1 ? "" : "s") \(dryRun ? "would be " : "")deleted, \(catalogue.manifests.count - removed) kept")
  }
}

extension String {
  func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
