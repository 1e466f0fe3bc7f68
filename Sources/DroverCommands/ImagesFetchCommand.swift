import ArgumentParser
import DroverBake
import DroverBasics
import DroverModel
import Foundation

/// `drover images fetch`: brings images back from a host that keeps its own image folder.
struct ImagesFetchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fetch",
    abstract: "Fetch baked images from a host's own image folder into this machine's, verified.",
    discussion: """
      For machines that never baked the images, such as throw-away CI runners: every image a \
      pool file names (or the images given) is fetched from the host's pool, with its initrd and, \
      unless it is this machine's own, its kernel, each checked against the digests recorded when \
      it was pushed. An image already here is not fetched again.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "Images as name@version or name@sha256:<prefix> (default: every image a pool file names).", completion: NameCompletion.images)
  var references: [String] = []

  @Option(name: .customLong("host"), help: "The host entry (by name) to fetch from.")
  var hostName: String

  @Option(help: "How long to wait for a bake or fetch of the same image in this image folder.")
  var lockTimeout: String = "10m"

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else {
      throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 10m")
    }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    try project.requireName()
    let entry = try ImageHostEntries.select([hostName], project: project)[0]
    var wanted: [ImageRef] = []
    for r in references {
      guard let ref = ImageRef(parsing: r) else {
        throw Diagnostic.error("cli.image", "\(Terminal.printable(r)) is not an image reference", hint: "name@version, e.g. web@v2")
      }
      wanted.append(ref)
    }
    if wanted.isEmpty { wanted = ImageHostEntries.poolImages(project) }
    let connected = ImageHostEntries.connect([entry], project: project, images: images)
    guard let host = connected.backends[entry.uri] else {
      throw CommandFailure(connected.problems)
    }
    let fetcher = ImageFetcher(imageDirectory: images.imageDir, poolName: images.imagePool, machine: project.machine, lockTimeout: DurationArgument.seconds(lockTimeout) ?? 600)
    var problems: [Diagnostic] = []
    do {
      let read = try HostImageRecord.readAll(on: host, pool: images.imagePool)
      problems += read.refused
      let onHost = ImageCatalogue(directory: "", manifests: read.records.map(\.manifest))
      for ref in wanted {
        guard let m = onHost.image(for: ref), let record = read.records.first(where: { $0.manifest.key == m.key }) else {
          problems.append(
            .error("image.missing", "\(entry.name) holds no pushed image \(ref)", subject: entry.name,
              hint: "push it there from a machine that baked it: drover images push --host \(entry.name)"))
          continue
        }
        let start = Date()
        do {
          switch try fetcher.fetch(record, from: host) {
          case .present: Output.out("\(m.reference) ← \(entry.name): already here (nothing fetched)")
          case .fetched(let bytes):
            Output.out(String(format: "%@ ← %@: fetched %@ and verified (%.2fs)", m.reference, entry.name, ByteSize(bytes: bytes / 1024 * 1024).description, Date().timeIntervalSince(start)))
          }
        } catch {
          problems += Diagnostic.list(of: error, code: "image.fetch", subject: m.reference)
        }
      }
    } catch {
      problems += Diagnostic.list(of: error, code: "image.fetch", subject: entry.name)
    }
    if problems.hasErrors { throw CommandFailure(problems) }
    if !problems.isEmpty { Report.diagnostics(problems, sources: [], format: .human, noColor: project.noColor) }
  }
}
