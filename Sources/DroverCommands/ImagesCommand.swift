import ArgumentParser
import DroverBake
import DroverBasics
import DroverModel
import DroverPlan
import DroverLibvirt
import DroverSpec
import Foundation
import Synchronization

/// `drover images`: the local image catalogue.
struct ImagesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "images",
    abstract: "List baked images with their digest, size, creation time and the nodes that use them.",
    subcommands: [ImagesListCommand.self, ImagesGCCommand.self, ImagesPushCommand.self, ImagesFetchCommand.self], defaultSubcommand: ImagesListCommand.self)
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
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let catalogue = images.catalogue
    let context = try? ProjectContext.load(project, readOnly: true)
    let used = context.flatMap { ImageUsage.nodesByKey($0, project: project.projectName) } ?? [:]
    let formatter = ISO8601DateFormatter()
    let rows = catalogue.manifests.sorted { ($0.name, $0.created) < ($1.name, $1.created) }
    // Which hosts with their own image folder hold a verified copy (one lookup per image and host).
    let remote = (project.settings?.hosts ?? []).filter { $0.imageDir != nil }
    var onHosts: [String: [String]] = [:]
    for m in rows {
      for entry in remote {
        guard let backend = context?.backends[entry.uri] else { continue }
        if (try? backend.volume(pool: images.imagePool, name: PoolVolumeNames.verifiedMark(of: m.artifact))) != nil { onHosts[m.key, default: []].append(entry.name) }
      }
    }
    if json {
      Output.json([
        "format_version": "1.0",
        "images": rows.map {
          [
            "name": $0.name, "version": $0.version, "key": $0.key, "artifact": $0.artifact, "sha256": $0.artifactSHA256,
            "size_bytes": $0.sizeBytes, "created": formatter.string(from: $0.created), "used_by": used[$0.key] ?? [],
            "on_hosts": onHosts[$0.key] ?? [],
          ] as [String: Any]
        },
      ])
      return
    }
    var table = [["NAME", "VERSION", "DIGEST", "SIZE", "CREATED", "USED BY"] + (remote.isEmpty ? [] : ["ON HOSTS"])]
    for m in rows {
      table.append(
        [
          m.name, m.version, m.shortKey, ByteSize(bytes: m.sizeBytes / 1024 * 1024).description,
          formatter.string(from: m.created), (used[m.key] ?? []).joined(separator: ",").ifEmpty("-"),
        ] + (remote.isEmpty ? [] : [(onHosts[m.key] ?? []).joined(separator: ",").ifEmpty("-")]))
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

  @Option(name: .customLong("host"), help: "Collect in this host entry's own image folder (by name) instead of this machine's; repeatable.")
  var hostNames: [String] = []

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let catalogue = images.catalogue
    let entries = hostNames.isEmpty ? [] : try ImageHostEntries.select(hostNames, project: project)
    let context = try ProjectContext.load(project, readOnly: true)
    if !context.unreachable.isEmpty {
      throw Diagnostic.error(
        "libvirt.unreachable",
        "cannot see every host (\(context.unreachable.keys.sorted().joined(separator: ", "))), so cannot tell which images are in use; nothing deleted",
        hint: "run it again once every host answers")
    }
    guard let inUse = ImageUsage.nodesByKey(context, project: project.projectName) else {
      throw Diagnostic.error(
        "libvirt.unreachable", "a host could not be read, so which images are in use is not known; nothing deleted",
        hint: "run drover plan to see which host, and try again once it answers")
    }
    if !entries.isEmpty { return try collect(on: entries, context: context, inUse: Set(inUse.keys)) }
    let keep = ImageGC.keep(
      catalogue: catalogue, pools: context.specs.poolSpecs, inUse: Set(inUse.keys),
      overlayBackings: ImageGC.overlayBackings(in: catalogue.directory))
    var removed = 0
    for m in catalogue.manifests where !keep.contains(m.key) {
      Output.out("\(dryRun ? "would delete" : "deleting") \(m.reference) (\(m.shortKey), \(m.artifact))")
      if !dryRun { ImageGC.delete(m, in: catalogue.directory) }
      removed += 1
    }
    let remaining = catalogue.manifests.filter { keep.contains($0.key) }
    let files = (try? FileManager.default.contentsOfDirectory(atPath: catalogue.directory)) ?? []
    for name in ImageGC.unusedBootFiles(names: files, remaining: remaining) {
      Output.out("\(dryRun ? "would delete" : "deleting") \(name) (a boot file no image left here names)")
      if !dryRun { SafeFiles.removeFile(name, in: catalogue.directory) }
    }
    Output.out("\(removed) image\(removed == 1 ? "" : "s") \(dryRun ? "would be " : "")deleted, \(catalogue.manifests.count - removed) kept")
  }

  /// `--host`: the same rule in each named host's own pool, through libvirt.
  func collect(on entries: [HostEntry], context: ProjectContext, inUse: Set<String>) throws {
    let project = context.project, images = self.images.resolved(context.project)
    let connected = ImageHostEntries.connect(entries, project: project, images: images)  // writable (the context reads only)
    var problems: [Diagnostic] = connected.problems
    for entry in entries {
      guard let backend = connected.backends[entry.uri] else { continue }
      do {
        let outcome = try HostImageCollector.collect(
          on: backend, pool: images.imagePool, pools: context.specs.poolSpecs, inUse: inUse, dryRun: dryRun)
        problems += outcome.refused
        for image in outcome.decision.images { Output.out("\(dryRun ? "would delete" : "deleting") \(image) on \(entry.name)") }
        let n = outcome.decision.images.count
        Output.out("\(entry.name): \(n) image\(n == 1 ? "" : "s") \(dryRun ? "would be " : "")deleted (\(outcome.decision.volumes.count) volumes), \(outcome.kept) kept")
      } catch {
        problems += Diagnostic.list(of: error, code: "image.gc", subject: entry.name)
      }
    }
    if problems.hasErrors { throw CommandFailure(problems) }
    if !problems.isEmpty { Report.diagnostics(problems, sources: [], format: .human, noColor: project.noColor) }
  }
}

/// `drover images push`: sends images ahead of time to the hosts that keep their own (host
/// entries with `image_dir`), verified by reading them back.
struct ImagesPushCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "push",
    abstract: "Push images to the hosts that keep their own image folder, and verify the copies.",
    discussion: """
      Each file is hashed while it is sent, then downloaded from the host and hashed again; a copy \
      already there and verified is not sent again. By default every image a pool file names goes \
      to every host entry with an image_dir.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "Images as name@version (default: every image a pool file names).", completion: NameCompletion.images)
  var references: [String] = []

  @Option(name: .customLong("host"), help: "Only this host entry (by name).")
  var hostNames: [String] = []

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    try project.requireName()
    let entries = try ImageHostEntries.select(hostNames, project: project)
    let catalogue = images.catalogue
    var wanted: [ImageManifest] = []
    if references.isEmpty {
      wanted = ImageHostEntries.poolImages(project).compactMap { catalogue.image(for: $0) }
    } else {
      for r in references {
        guard let ref = ImageRef(parsing: r), let m = catalogue.image(for: ref) else {
          throw Diagnostic.error("image.missing", "no baked image \(Terminal.printable(r)) in \(catalogue.directory)", hint: "bake it first: drover bake")
        }
        wanted.append(m)
      }
    }
    let connected = ImageHostEntries.connect(entries, project: project, images: images)
    let nodeImages = images.nodeImages()
    // Hosts in parallel (each host's transfers one at a time).
    let lines = Mutex<[String: [String]]>([:])
    let errors = Mutex<[Diagnostic]>([])
    let hosts = entries.filter { connected.backends[$0.uri] != nil }
    BlockingFanOut.forEach(hosts.count, width: max(1, min(hosts.count, 4))) { i in
      let entry = hosts[i]
      guard let backend = connected.backends[entry.uri] else { return }
      for m in wanted {
        let start = Date()
        do {
          let outcome = try nodeImages.push(m, to: backend)
          let what = outcome.sent.isEmpty
            ? "already there, verified earlier (nothing sent)"
            : "sent \(ByteSize(bytes: outcome.bytesSent / 1024 * 1024)) and verified by reading it back"
          lines.withLock { $0[entry.name, default: []].append(String(format: "%@ → %@: %@ (%.2fs)", m.reference.description, entry.name, what, Date().timeIntervalSince(start))) }
        } catch {
          errors.withLock { $0 += Diagnostic.list(of: error, code: "image.push") }
        }
      }
    }
    for name in lines.withLock({ $0 }).keys.sorted() { for line in lines.withLock({ $0[name] ?? [] }) { Output.out(line) } }
    // The hosts that could not be reached, then the transfers that failed: said once, at the edge.
    let problems = connected.problems + errors.withLock { $0 }
    if !problems.isEmpty { throw CommandFailure(problems) }
  }
}

extension String {
  func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
