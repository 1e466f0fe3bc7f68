import ArgumentParser
import DroverBake
import DroverBasics
import DroverLibvirt
import DroverModel
import DroverSpec
import Foundation

/// `drover bake`: builds image recipes into content-addressed qcow2 images.
struct BakeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bake",
    abstract: "Build image recipes into versioned, content-addressed qcow2 images.",
    discussion: """
      The cache key is a digest of the recipe, every file it names, the base image and the tool \
      versions: the same inputs answer at once from the cache, with no VM boot. Recipe commands \
      run inside a build VM under libvirt. The image lands in Drover's storage pool with a \
      manifest and a checksum; a failed or interrupted bake adds nothing.
      """)

  @OptionGroup var project: ProjectOptions
  @OptionGroup var images: ImageOptions

  @Argument(help: "Images to bake as name@version (default: every recipe in images/).", completion: NameCompletion.images)
  var references: [String] = []

  @Option(help: "The libvirt host that runs build VMs and holds the image pool (default: $LIBVIRT_DEFAULT_URI, as virsh, else qemu:///system).")
  var host: String?

  /// `--host`, else `LIBVIRT_DEFAULT_URI` (as virsh and libvirt's clients read it), else qemu:///system.
  static func host(_ flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    if let flag { return flag }
    if let uri = environment["LIBVIRT_DEFAULT_URI"], !uri.isEmpty { return uri }
    return "qemu:///system"
  }

  @Flag(help: "Print one JSON object per image.")
  var json = false

  @Flag(help: "Rebuild even when the cache holds the image: the same bytes keep the cached one; other bytes are refused (its key names those bytes), so a recipe is checked for reproducible builds.")
  var force = false

  enum OnError: String, ExpressibleByArgument, CaseIterable {
    case cleanup, keep
  }

  @Option(help: "After a failed bake: cleanup removes its build machine and disk (the default); keep leaves them for debugging, marked so no later bake removes them, and says where they are.")
  var onError: OnError = .cleanup

  @Option(help: "How long to wait for another bake of the same image in the same image folder (then its image answers from the cache).")
  var lockTimeout: String = "10m"

  func validate() throws {
    guard DurationArgument.seconds(lockTimeout) != nil else {
      throw ValidationError("--lock-timeout must be a duration such as 0s, 30s or 10m")
    }
  }

  func run() throws {
    let project = try LoadedProject(self.project)
    let images = self.images.resolved(project)
    let (sources, readProblems) = SpecFiles.read([project.imagesPath])
    let (specs, problems) = SpecLoader.load(sources, machine: project.machine, projectFolder: project.absoluteDir, hosts: project.hosts)
    if (readProblems + problems).hasErrors { throw CommandFailure(readProblems + problems, sources: sources) }
    let wanted = specs.recipes.filter { references.isEmpty || references.contains($0.recipe.reference.description) }
    let unknown = references.filter { r in !specs.recipes.contains { $0.recipe.reference.description == r } }
    if !unknown.isEmpty {
      throw Diagnostic.error(
        "spec.image.unknown", "no recipe for \(unknown.joined(separator: ", ")) in \(project.imagesPath)", hint: "drover images lists the recipes and baked images")
    }
    let backend: LibvirtHostBackend
    do { backend = try LibvirtHostBackend.connect(
        Self.host(host), keyring: Keyring(project: project.projectName, key: nil), timeout: project.connectTimeout, callTimeout: project.callTimeout,
        keepAlive: project.keepAlive) } catch {
      throw CommandFailure(error.diagnostics)
    }
    let interrupt = InterruptFlag.install()
    let quiet = json
    let start = Date()
    let baker = Baker(
      imageDirectory: images.imageDir, poolName: images.imagePool, host: backend, stateDirectory: project.stateDirectory,
      machine: project.machine,
      hostPaths: HostPathPolicy(project: project.absoluteDir, allowed: project.machine.allowedRoots),
      lockTimeout: DurationArgument.seconds(lockTimeout) ?? 600,
      shouldStop: { interrupt.isSet },
      onEvent: { event in
        guard !quiet else { return }
        switch event {
        case .step(let name): Output.out(String(format: "[%7.2fs]   %@…", Date().timeIntervalSince(start), name))
        case .stepDone(let name, let seconds): Output.out(String(format: "[%7.2fs]   %@ done (%.2fs)", Date().timeIntervalSince(start), name, seconds))
        case .console(let line): Output.out("            | \(line)")
        }
      })
    // Bases first: a recipe built on another Drover image needs that image baked.
    let ordered = wanted.sorted { a, _ in if case .image = a.recipe.base { return false } else { return true } }
    var failures: [Diagnostic] = []
    for loaded in ordered {
      let recipe = loaded.recipe
      let t = Date()
      if !json { Output.out("==> bake \(recipe.reference)") }
      do {
        let result = try baker.bake(
          recipe, recipeDirectory: (loaded.file as NSString).deletingLastPathComponent, options: BakeOptions(force: force, keepOnError: onError == .keep))
        let m = result.manifest
        let seconds = Date().timeIntervalSince(t)
        if json {
          Output.jsonLine([
            "format_version": "1.0", "event": "image", "image": m.reference, "key": m.key, "artifact": m.artifact, "sha256": m.artifactSHA256, "cache_hit": result.cacheHit,
            "machines_booted": result.machinesBooted, "seconds": seconds, "timings": m.timings,
            "forced": result.forced?.rawValue ?? NSNull(),
          ])
        } else {
          let what: String
          switch (result.cacheHit, result.forced) {
          case (true, _): what = "cache hit (inputs unchanged, nothing rebuilt, no VM booted)"
          case (_, .identical?): what = "rebuilt (--force): the same bytes as the cached image, which stays"
          default: what = "built"
          }
          Output.out(String(format: "    %@: %@ %@ sha256:%@ (%.3fs)", recipe.reference.description, what, m.artifact, String(m.artifactSHA256.prefix(16)), seconds))
        }
      } catch {
        var diagnostics = Diagnostic.list(of: error, code: "bake")
        // What the base brought (its packages, its kernel) is located at the recipe's base.
        for i in diagnostics.indices where diagnostics[i].location == nil && ["bake.packages", "bake.kernel"].contains(diagnostics[i].code) {
          diagnostics[i].location = loaded.baseRange
        }
        failures += diagnostics
        if interrupt.isSet { throw CommandFailure(failures, sources: sources, status: 130) }
      }
    }
    // Every recipe was tried; what failed is said once, at the edge.
    if !failures.isEmpty { throw CommandFailure(failures, sources: sources) }
  }
}
