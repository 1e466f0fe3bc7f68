import DroverBasics
import DroverModel
import Foundation

/// Progress of a bake, for the CLI to print.
public enum BakeEvent: Sendable {
  case step(String)
  case stepDone(String, seconds: Double)
  case console(String)
}

/// The outcome of one bake.
public struct BakeResult: Sendable {
  public var manifest: ImageManifest
  public var cacheHit: Bool
  /// Build machines booted by this bake (0 on a cache hit).
  public var machinesBooted: Int
  /// `--force` on a cached image: what became of the rebuild (nil: not forced).
  public var forced: ForcedRebuild? = nil
}

/// What a forced rebuild of a cached image did.
public enum ForcedRebuild: String, Sendable {
  /// The same bytes as the cached image: that one stays.
  case identical
  /// Nothing was cached (or its file was gone): an ordinary build.
  case built
}

/// How one bake runs (Packer's `-force` and `-on-error`).
public struct BakeOptions: Sendable {
  /// Rebuild even when the cache holds the image: a check that the recipe rebuilds to the same
  /// bytes (it is refused when not: a key names one image's bytes, which plans, overlays and
  /// hosts' copies rely on), or a repair of a cached image whose file is gone.
  public var force = false
  /// On failure keep the build machine's staging folder (disk, console) and a machine still
  /// running, marked so no later bake removes them; else remove them (the default).
  public var keepOnError = false
  public init(force: Bool = false, keepOnError: Bool = false) {
    self.force = force
    self.keepOnError = keepOnError
  }
}

/// Builds a recipe into a content-addressed qcow2 image in Drover's image pool.
///
/// Every step works in a staging folder; the image appears in the pool by one `rename` and only
/// then gets its manifest, so an interrupted or failed bake leaves no partial image, and its
/// staging folder and build machine are removed by this bake or the next one.
public final class Baker: @unchecked Sendable {
  public let imageDirectory: String
  public let poolName: String
  let host: any ImageHost
  /// Where build machines run: QEMU processes for local bakes, else the host's libvirt.
  let machines: any BuildMachineHost
  let stateDirectory: String
  let runner = ProcessRunner()
  let digests: FileDigestCache
  let onEvent: @Sendable (BakeEvent) -> Void
  let shouldStop: @Sendable () -> Bool
  /// The machine's kernel for recipes that name none, and where named host files may lie.
  let machine: MachineSettings
  let hostPaths: HostPathPolicy
  /// Seconds to wait for another bake of the same image to finish.
  let lockTimeout: Double

  public init(
    imageDirectory: String, poolName: String, host: any ImageHost, stateDirectory: String,
    machine: MachineSettings = MachineSettings(), hostPaths: HostPathPolicy = .projectOnly, lockTimeout: Double = 600,
    shouldStop: @escaping @Sendable () -> Bool = { false }, onEvent: @escaping @Sendable (BakeEvent) -> Void = { _ in }
  ) {
    self.machine = machine
    self.hostPaths = hostPaths
    self.lockTimeout = lockTimeout
    self.imageDirectory = imageDirectory
    self.poolName = poolName
    self.host = host
    self.machines = LocalBuildMachines.canRun(for: host.uri) ? LocalBuildMachines(imageDirectory: imageDirectory) : host
    self.stateDirectory = stateDirectory
    self.digests = FileDigestCache(stateDirectory: stateDirectory)
    self.shouldStop = shouldStop
    self.onEvent = onEvent
  }

  /// The key a recipe would bake to, without building anything.
  public func key(for recipe: ImageRecipe, recipeDirectory: String, catalogue: ImageCatalogue) throws -> BakeKey {
    var baseKey: String?
    if case .image(let ref) = recipe.base {
      guard let base = catalogue.image(for: ref) else {
        throw Diagnostic.error(
          "bake.base-missing", "base image \(ref) has not been baked", subject: "image \(recipe.reference)",
          hint: "bake \(ref) first: drover bake")
      }
      baseKey = base.key
    }
    defer { digests.save() }
    var layerKey: String?
    if case .debian(let base) = recipe.base { layerKey = debianLayerKey(base) }
    return try BakeKey.compute(
      recipe: recipe, recipeDirectory: recipeDirectory, baseKey: baseKey,
      tools: ToolVersions.current(stateDirectory: stateDirectory, runner: runner), digests: digests, machineKernel: machine.kernel,
      layerKey: layerKey)
  }

  /// The key of a Debian base's package layer on this machine (see `DebianLayer.key`).
  func debianLayerKey(_ base: ImageRecipe.DebianBase) -> String {
    DebianLayer.key(
      base, machine: DebianLayer.MachineApt.current(digests: digests),
      toolVersion: ToolVersions.layerTool("mmdebstrap", stateDirectory: stateDirectory, runner: runner))
  }

  /// The host files a recipe names (kernel, initrd, base file), each checked on its real path —
  /// links resolved — to lie in the project or under a root the machine allows, right before
  /// use; returned resolved so what is checked is what is read.
  func hostFiles(_ recipe: ImageRecipe, recipeDirectory: String) throws -> (kernel: String, initrd: String?, base: String?) {
    func checked(_ path: String, _ what: String) throws -> String {
      if let why = hostPaths.resolvedProblem(path, in: recipeDirectory, realPath: SafeFiles.realPath) {
        throw Diagnostic.error(
          "bake.input", "\(what) \(Terminal.escaped(path)) \(why)", subject: "image \(recipe.reference)",
          hint: "put the file in the project folder, or \(machine.allowHint)")
      }
      return SafeFiles.realPath(HostPathPolicy.located(path, in: recipeDirectory)) ?? path
    }
    let kernel = try recipe.kernel.map { try checked($0, "kernel") } ?? machine.kernel
    let initrd = try recipe.initrd.map { try checked($0, "initrd") }
    var base: String?
    if case .file(let path, _) = recipe.base { base = try checked(path, "base file") }
    return (kernel, initrd, base)
  }

  public func bake(_ recipe: ImageRecipe, recipeDirectory: String, options: BakeOptions = BakeOptions()) throws -> BakeResult {
    let catalogue = ImageCatalogue(directory: imageDirectory)
    let start = Date()
    // Image, staging and log paths are built from these: only validated names reach a path
    // (the spec decoder checks them; this holds for a recipe built in code too).
    guard ImageRef.isName(Substring(recipe.name)), ImageRef.isName(Substring(recipe.version)), !recipe.name.contains("..") else {
      throw Diagnostic.error(
        "bake.input", "image name \(Terminal.escaped(recipe.name))@\(Terminal.escaped(recipe.version)) is not a valid name", subject: "image")
    }
    let files = try hostFiles(recipe, recipeDirectory: recipeDirectory)
    let key = try key(for: recipe, recipeDirectory: recipeDirectory, catalogue: catalogue)
    if !options.force, let hit = catalogue.image(forKey: key.key), FileManager.default.fileExists(atPath: catalogue.path(of: hit)) {
      return BakeResult(manifest: hit, cacheHit: true, machinesBooted: 0)
    }
    let timings: [String: Double] = ["key": Date().timeIntervalSince(start)]
    try host.ensureImagePool(name: poolName, directory: imageDirectory)
    var st = stat()
    if lstat(imageDirectory, &st) == 0, st.st_mode & 0o022 != 0 {
      throw Diagnostic.error(
        "io.unsafe-folder", "refusing the image folder \(imageDirectory): others can write it (mode \(String(st.st_mode & 0o777, radix: 8)))",
        subject: imageDirectory, hint: "chmod go-w \(imageDirectory): whoever can write it can plant images and links")
    }
    // One bake of an image at a time: a second waits (finitely), then finds the first's image.
    let lock = try BakeLock.take(recipe.reference.description, imageDirectory: imageDirectory, timeout: lockTimeout) {
      self.onEvent(.step("waiting for another bake of \(recipe.reference)"))
    }
    defer { withExtendedLifetime(lock) {} }
    if !options.force, let hit = ImageCatalogue(directory: imageDirectory).image(forKey: key.key),
      FileManager.default.fileExists(atPath: catalogue.path(of: hit))
    {
      return BakeResult(manifest: hit, cacheHit: true, machinesBooted: 0)
    }
    try removeLeftovers()

    let short = String(key.key.prefix(12))
    let machine = "drover-build-\(short)"
    // After `removeLeftovers`, a machine of this name can only be a kept one (another bake of
    // this image holds the bake lock): it is someone's debugging session, never stopped here.
    if ((try? machines.buildMachineNames()) ?? []).contains(machine) {
      throw Diagnostic.error(
        "bake.kept-running", "the build machine \(machine) of \(recipe.reference), kept by a failed bake (--on-error=keep), still runs",
        subject: "image \(recipe.reference)", hint: "stop it first (its folder is in \(imageDirectory)/.staging/\(short)-kept-*), then bake again")
    }

    let baseName = "\(recipe.name)-\(recipe.version)-\(short)"
    // The live staging folder `<key>-<pid>` is what marks this bake's build machine and
    // unpublished image as someone's: another bake never removes them while this process lives.
    let stageEntry = "\(short)-\(getpid())"
    let stage = try SafeFiles.directory(stageEntry, in: SafeFiles.directory(".staging", in: imageDirectory), fresh: true)
    // `--on-error=keep`: the folder this failed bake is kept in (then nothing is removed).
    var keptIn: String?
    defer {
      if keptIn == nil {
        try? machines.removeBuildMachine(name: machine)
        try? SafeFiles.remove(stageEntry, inFolder: ".staging", of: imageDirectory)
      }
    }
    let logDirectory = try SafeFiles.directory("logs", in: imageDirectory)
    let buildLog = "\(logDirectory)/\(baseName).log"
    do {
      return try build(
        recipe, recipeDirectory: recipeDirectory, files: files, key: key, catalogue: catalogue, stage: stage, machine: machine, baseName: baseName,
        buildLog: buildLog, start: start, timings: timings, force: options.force)
    } catch {
      // What was kept, and where, goes into the failure's hint: one error, its fix and its traces.
      guard error is DiagnosticConvertible else { throw error }
      var failure = Diagnostic.first(of: error, code: "bake")
      var notes: [String] = []
      if options.keepOnError && failure.code != "bake.interrupted" {
        // Renamed so no later bake takes it for a dead bake's leftover (`-kept-` entries and the
        // machine of their key are never removed by `removeLeftovers`).
        let kept = "\(short)-kept-\(Int(Date().timeIntervalSince1970))"
        if rename(stage, imageDirectory + "/.staging/" + kept) == 0 {
          keptIn = imageDirectory + "/.staging/" + kept
          // Its own copy of the log: the next bake of this image writes the shared one anew.
          try? FileManager.default.copyItem(atPath: buildLog, toPath: imageDirectory + "/.staging/" + kept + "/build.log")
          notes.append(keptNote(imageDirectory + "/.staging/" + kept, machine: machine))
        }
      }
      if FileManager.default.fileExists(atPath: buildLog), !(failure.hint ?? "").contains(buildLog) { notes.append("the build log: \(buildLog)") }
      if !notes.isEmpty { failure.hint = ([failure.hint].compactMap { $0 } + notes).joined(separator: "; ") }
      throw failure
    }
  }

  /// Where a kept failed bake is and how to reach it.
  func keptNote(_ folder: String, machine: String) -> String {
    let disk = folder + "/disk.raw"
    var how = "kept for debugging in \(folder): the build disk \(disk) (look inside: mount -o loop,ro \(disk) /mnt), its console \(folder)/console.log"
    if FileManager.default.fileExists(atPath: folder + "/build.log") { how += ", its build log \(folder)/build.log" }
    if ((try? machines.buildMachineNames()) ?? []).contains(machine) {
      how += "; the build machine \(machine) still runs"
        + (machines === host ? " (virsh -c \(host.uri) console \(machine))" : " (its console log above; stop it: kill $(cat \(imageDirectory)/.machines/\(machine).pid))")
    }
    return how + ". No later bake removes it; delete the folder when done: rm -rf \(folder)"
  }

  /// The build itself, in the staging folder (see `bake`).
  func build(
    _ recipe: ImageRecipe, recipeDirectory: String, files: (kernel: String, initrd: String?, base: String?), key: BakeKey, catalogue: ImageCatalogue,
    stage: String, machine: String, baseName: String, buildLog: String, start: Date, timings initial: [String: Double], force: Bool
  ) throws -> BakeResult {
    var timings = initial

    func step<T>(_ name: String, _ body: () throws -> T) throws -> T {
      if shouldStop() { throw Diagnostic.error("bake.interrupted", "bake interrupted; nothing was added to the pool") }
      onEvent(.step(name))
      let t = Date()
      let value = try body()
      timings[name] = Date().timeIntervalSince(t)
      onEvent(.stepDone(name, seconds: timings[name]!))
      return value
    }

    let kernel = files.kernel
    let initrd = try step("initramfs") {
      try files.initrd ?? BootInitramfs.ensure(kernel: kernel, in: imageDirectory, digests: digests, runner: runner)
    }
    let disk = stage + "/disk.raw"
    let needsMachine = try step("filesystem") {
      try prepareDisk(
        recipe, recipeDirectory: recipeDirectory, baseFile: files.base, stage: stage, disk: disk, catalogue: catalogue,
        layerKey: key.inputs["debian-layer"])
    }
    var booted = 0
    if needsMachine {
      booted = 1
      try step("commands") {
        try runCommands(recipe, machine: machine, kernel: kernel, initrd: initrd, stage: stage, disk: disk, buildLog: buildLog)
      }
    }
    // A distro image boots its own kernel and initrd, taken from its finished disk.
    var ownBoot: (kernel: (path: String, sha256: String), initrd: (path: String, sha256: String), packages: [ImageManifest.InstalledPackage])?
    if case .debian = recipe.base {
      ownBoot = try step("boot files") {
        let read = try ImageOwnBoot.read(disk: disk, stage: stage, recipe: recipe, runner: runner)
        let k = try placeBootFile(read.kernel) { PoolVolumeNames.bootFile(kind: "kernel", sha256: $0) }
        let i = try placeBootFile(read.initrd) { ImageNames.imageInitrd(sha256: $0) }
        return (k, i, read.packages)
      }
    }
    let artifactName = baseName + ".qcow2"
    let staged = stage + "/" + artifactName
    try step("convert") {
      var argv = ["/usr/bin/qemu-img", "convert", "-f", "raw", "-O", "qcow2"]
      if recipe.compression == .zstd { argv += ["-c", "-o", "compression_type=zstd"] }
      try runner.run(argv + [disk, staged], timeout: 600)
      try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: staged)
    }
    let sha = try step("checksum") { try FileDigestCache.sha256(ofFile: staged) }
    let size = ((try? FileManager.default.attributesOfItem(atPath: staged))?[.size] as? NSNumber)?.uint64Value ?? 0
    timings["total"] = Date().timeIntervalSince(start)
    var manifest = ImageManifest(
      name: recipe.name, version: recipe.version, key: key.key, recipe: recipe, inputs: key.inputs, tools: key.tools,
      artifact: artifactName, artifactSHA256: sha, sizeBytes: size, kernel: kernel, initrd: initrd,
      cmdline: recipe.cmdline ?? "console=ttyS0 panic=-1", buildLog: buildLog, created: Date(), timings: timings)
    if let own = ownBoot {
      manifest.kernel = own.kernel.path
      manifest.initrd = own.initrd.path
      manifest.kernelSHA256 = own.kernel.sha256
      manifest.initrdSHA256 = own.initrd.sha256
      manifest.packages = own.packages
      manifest.cmdline = recipe.cmdline ?? "root=/dev/vda rw console=ttyS0 panic=-1"
    }
    let forced = try force ? checkForced(manifest) : nil
    if forced != .identical { try publish(manifest, staged: staged) }
    let kept = forced == .identical ? ImageCatalogue(directory: imageDirectory).image(forKey: key.key) ?? manifest : manifest
    return BakeResult(manifest: kept, cacheHit: false, machinesBooted: booted, forced: forced)
  }

  /// `--force` over a cached image: the same bytes keep the cached one. Other bytes are refused:
  /// the key names the cached image's bytes, which saved plans, node overlays and the hosts'
  /// verified copies rely on, so they never change under it.
  func checkForced(_ manifest: ImageManifest) throws -> ForcedRebuild {
    let target = imageDirectory + "/" + manifest.artifact
    guard let old = ImageCatalogue(directory: imageDirectory).image(forKey: manifest.key), FileManager.default.fileExists(atPath: target) else {
      return .built
    }
    guard old.artifactSHA256 == manifest.artifactSHA256 else {
      throw Diagnostic.error(
        "bake.force-differs",
        "the rebuild of \(manifest.reference) is not the cached image's bytes (sha256 \(old.artifactSHA256.prefix(12)) → \(manifest.artifactSHA256.prefix(12))): the recipe does not rebuild reproducibly; the cached image stays",
        subject: "image \(manifest.reference)",
        hint: "its key names those bytes, which plans, overlays and hosts' copies rely on; to change the image, bake a new version (version: in the recipe)")
    }
    return .identical
  }

  /// Moves a boot file an image brought into the image folder under its content-addressed name
  /// (`name(<its sha256>)`), readable by QEMU; one already there is the same bytes.
  func placeBootFile(_ staged: String, name: (String) -> String) throws -> (path: String, sha256: String) {
    let sha = try FileDigestCache.sha256(ofFile: staged)
    let target = imageDirectory + "/" + name(sha)
    if (try? FileDigestCache.sha256(ofFile: target)) != sha {
      chmod(staged, 0o644)
      guard rename(staged, target) == 0 else {
        throw Diagnostic.error("bake.io", "cannot move a boot file into \(imageDirectory): \(String(cString: strerror(errno)))")
      }
    }
    return (target, sha)
  }

  /// Makes the raw disk; returns whether a build machine must run (commands, or files to copy
  /// into an imported base).
  /// - Parameter layerKey: a Debian base's package-layer key, as the bake key took it.
  func prepareDisk(
    _ recipe: ImageRecipe, recipeDirectory: String, baseFile: String?, stage: String, disk: String, catalogue: ImageCatalogue, layerKey: String?
  ) throws -> Bool {
    let script = buildScript(recipe)
    switch recipe.base {
    case .rootfs:
      let root = stage + "/rootfs"
      for dir in ["bin", "sbin", "dev", "proc", "sys", "etc", "tmp", "run", "root", "var", "usr/bin", "usr/sbin"] {
        try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
      }
      try FileManager.default.copyItem(atPath: BootInitramfs.busybox, toPath: root + "/bin/busybox")
      try FileManager.default.createSymbolicLink(atPath: root + "/bin/sh", withDestinationPath: "busybox")
      return try finishRoot(root, recipe, recipeDirectory: recipeDirectory, script: script, disk: disk)
    case .debian(let base):
      let layer = try DebianLayer.ensure(
        base, key: layerKey ?? debianLayerKey(base), imageDirectory: imageDirectory, machine: DebianLayer.MachineApt.current(digests: digests), runner: runner,
        lockTimeout: lockTimeout
      ) { onEvent(.step("packages: mmdebstrap \(base.suite) (\(base.packages.count) packages)")) }
      onEvent(.step(layer.built ? "packages: layer built" : "packages: layer reused (\((layer.path as NSString).lastPathComponent))"))
      let root = stage + "/rootfs"
      // Hard links into the staging root (same file system: both live in the image folder);
      // a copy where links cannot be made. Nothing writes through them (see DebianLayer).
      do { try runner.run(["/bin/cp", "-a", "-l", layer.path, root], timeout: 600) } catch {
        try? FileManager.default.removeItem(atPath: root)
        try runner.run(["/bin/cp", "-a", layer.path, root], timeout: 600)
      }
      return try finishRoot(root, recipe, recipeDirectory: recipeDirectory, script: script, disk: disk)
    case .file(let path, let sha):
      let source = baseFile ?? BakeKey.resolve(path, in: recipeDirectory)
      let actual = try digests.digest(of: source)
      guard actual == sha else {
        throw Diagnostic.error(
          "bake.base-checksum", "base file \(path) has sha256 \(actual), not \(sha) as the recipe pins", subject: "image \(recipe.reference)")
      }
      try checkImportedBase(source)
      try runner.run(["/usr/bin/qemu-img", "convert", "-O", "raw", source, disk], timeout: 600)
    case .image(let ref):
      guard let base = catalogue.image(for: ref) else {
        throw Diagnostic.error("bake.base-missing", "base image \(ref) has not been baked", subject: "image \(recipe.reference)")
      }
      try ImageVerifier.verify(base, in: catalogue)
      try runner.run(["/usr/bin/qemu-img", "convert", "-O", "raw", catalogue.path(of: base), disk], timeout: 600)
    }
    // An imported base gets its files and commands through a payload disk read by the build machine.
    let payload = stage + "/payload"
    try FileManager.default.createDirectory(atPath: payload + "/files", withIntermediateDirectories: true)
    try copyFiles(recipe, recipeDirectory: recipeDirectory, into: payload + "/files")
    try (script ?? buildScript(recipe, force: true)!).write(toFile: payload + "/build.sh", atomically: true, encoding: .utf8)
    try runner.run(["/usr/sbin/mkfs.ext4", "-q", "-F", "-d", payload, stage + "/payload.raw", "64M"], timeout: 120)
    return !recipe.files.isEmpty || script != nil
  }

  /// Puts the recipe's files and build script into an assembled root and makes the disk of it
  /// (`mkfs.ext4 -d`: no mounts); returns whether a build machine must run the script.
  func finishRoot(_ root: String, _ recipe: ImageRecipe, recipeDirectory: String, script: String?, disk: String) throws -> Bool {
    try copyFiles(recipe, recipeDirectory: recipeDirectory, into: root)
    if let script {
      try FileManager.default.createDirectory(atPath: root + "/.drover", withIntermediateDirectories: true)
      try script.write(toFile: root + "/.drover/build.sh", atomically: true, encoding: .utf8)
    }
    try runner.run(["/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "drover", "-d", root, disk, "\(recipe.size.mebibytes)M"], timeout: 600)
    return script != nil
  }

  /// Refuses an imported base that has its own backing file or whose format is not what its name says.
  func checkImportedBase(_ path: String) throws {
    let info = try runner.run(["/usr/bin/qemu-img", "info", "--output=json", path], timeout: 30).stdout
    let json = (try? JSONSerialization.jsonObject(with: Data(info.utf8))) as? [String: Any] ?? [:]
    if json["backing-filename"] != nil {
      throw Diagnostic.error(
        "bake.base-backing", "base file \(path) has its own backing file (\(json["backing-filename"]!))", subject: path,
        hint: "flatten it first: qemu-img convert -O qcow2 \(path) flat.qcow2")
    }
    let format = json["format"] as? String ?? "unknown"
    let expected = path.hasSuffix(".qcow2") ? "qcow2" : path.hasSuffix(".raw") || path.hasSuffix(".img") ? "raw" : format
    guard format == expected, ["qcow2", "raw"].contains(format) else {
      throw Diagnostic.error("bake.base-format", "base file \(path) is in format \(format), expected \(expected)", subject: path)
    }
  }

  /// Copies the recipe's files into the image root. Paths stay inside: the target's folders are
  /// walked one by one and a symlink among them (one the base image brought, pointing at the
  /// host) is an error, never followed; the source must resolve inside the recipe's folder.
  /// (The spec decoder refuses `..` already; this holds even for a recipe built in code.)
  func copyFiles(_ recipe: ImageRecipe, recipeDirectory: String, into root: String) throws {
    guard let sourceRoot = ImageTree.resolved(recipeDirectory) else {
      throw Diagnostic.error("bake.input", "cannot resolve the recipe folder \(recipeDirectory)", subject: recipeDirectory)
    }
    for file in recipe.files {
      let source = BakeKey.resolve(file.source, in: recipeDirectory)
      guard let real = ImageTree.resolved(source), real.hasPrefix(sourceRoot + "/") else {
        throw Diagnostic.error(
          "bake.input", "file source \(file.source) is not a file inside \(recipeDirectory)", subject: file.source,
          hint: "sources are files under the project's images/ folder; a recipe never reads the host's files")
      }
      let target = try ImageTree.prepareTarget(root: root, path: file.path)
      try FileManager.default.copyItem(atPath: real, toPath: target)
      try FileManager.default.setAttributes([.posixPermissions: Int(file.mode)], ofItemAtPath: target)
    }
  }

  /// The script the build machine runs in a chroot of the image; nil when there is nothing to run.
  func buildScript(_ recipe: ImageRecipe, force: Bool = false) -> String? {
    guard !recipe.commands.isEmpty || force else { return nil }
    var s = "#!/bin/sh\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root\n"
    s += "[ -x /bin/busybox ] && /bin/busybox --install -s /bin 2>/dev/null\n"
    s += "[ -d /.drover/payload/files ] && cp -a /.drover/payload/files/. /\n"
    for (i, command) in recipe.commands.enumerated() {
      s += "echo \"+ step \(i + 1): \"\(shellQuote(command))\n"
      s += "( \(command) ) || exit $?\n"
    }
    return s + "exit 0\n"
  }

  func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

  /// Boots the build machine, streams its console, and checks the commands' exit status.
  func runCommands(_ recipe: ImageRecipe, machine: String, kernel: String, initrd: String, stage: String, disk: String, buildLog: String) throws {
    let console = stage + "/console.log"
    var disks = [(path: disk, format: "raw")]
    if FileManager.default.fileExists(atPath: stage + "/payload.raw") { disks.append((stage + "/payload.raw", "raw")) }
    try machines.bootBuildMachine(
      BuildMachine(
        name: machine, kernel: kernel, initrd: initrd, cmdline: "console=ttyS0 panic=-1 quiet drover.build=1", disks: disks,
        consoleLog: console))
    let deadline = Date().addingTimeInterval(recipe.commandTimeout.seconds + 60)
    var offset: UInt64 = 0
    var pending: [UInt8] = []
    var log = ""
    let started = Date()
    while true {
      if let handle = FileHandle(forReadingAtPath: console) {
        try? handle.seek(toOffset: offset)
        let data = handle.readDataToEndOfFile()
        try? handle.close()
        offset += UInt64(data.count)
        pending += data
        // Split on bytes: a serial console ends lines with "\r\n", one Character in Swift.
        while let newline = pending.firstIndex(of: 0x0A) {
          let line = String(decoding: pending[..<newline], as: UTF8.self).trimmingCharacters(in: .controlCharacters)
          pending.removeSubrange(...newline)
          let stamped = String(format: "[%7.2fs] ", Date().timeIntervalSince(started)) + line
          log += stamped + "\n"
          onEvent(.console(stamped))
          if line.hasPrefix("DROVER-BUILD-EXIT=") {
            try? log.write(toFile: buildLog, atomically: true, encoding: .utf8)
            // The guest synced and unmounted before printing this; QEMU still holds the disk's
            // lock until it exits, so stop the machine before anything reads the disk. (Stopping
            // takes ~0.2 s now that libvirtd runs under a subreaper; see scripts/setup.)
            try machines.removeBuildMachine(name: machine)
            let code = Int(line.dropFirst("DROVER-BUILD-EXIT=".count)) ?? -1
            guard code == 0 else {
              throw Diagnostic.error(
                "bake.step-failed", "a build command of \(recipe.reference) exited with status \(code)",
                subject: "image \(recipe.reference)", hint: "see the build log: \(buildLog)")
            }
            return
          }
          if line.hasPrefix("DROVER BOOT FAILED") {
            throw Diagnostic.error("bake.boot", "the build machine could not boot: \(line)", hint: "see \(buildLog)")
          }
        }
      }
      if shouldStop() { throw Diagnostic.error("bake.interrupted", "bake interrupted; nothing was added to the pool") }
      if Date() > deadline {
        try? log.write(toFile: buildLog, atomically: true, encoding: .utf8)
        throw Diagnostic.error(
          "bake.timeout", "the build commands of \(recipe.reference) ran past command_timeout (\(recipe.commandTimeout))",
          subject: "image \(recipe.reference)", hint: "see the build log: \(buildLog)")
      }
      usleep(25_000)  // the console is a local file: polling it often costs nothing and ends the step sooner
    }
  }

  /// Moves the image into the pool (one rename), then writes its manifest and checksum.
  func publish(_ manifest: ImageManifest, staged: String) throws {
    let target = imageDirectory + "/" + manifest.artifact
    guard rename(staged, target) == 0 else {
      throw Diagnostic.error("bake.io", "cannot move the image into \(imageDirectory): \(String(cString: strerror(errno)))")
    }
    try manifest.writeBesideArtifact(in: imageDirectory)
    try host.refreshImagePool(name: poolName)
  }

  /// Removes what an interrupted bake left: build machines, staging folders of dead processes,
  /// and image files that never got a manifest.
  ///
  /// A bake still running in another process is never touched: its staging folder
  /// `<key>-<pid>` names a live process, and its build machine (`drover-build-<key>`) and its
  /// image before the manifest (`…-<key>.qcow2`) carry the same key.
  func removeLeftovers() throws {
    var live: Set<String> = []
    for entry in try SafeFiles.entries(of: ".staging", in: imageDirectory) {
      // A failed bake kept for debugging (`--on-error=keep`): its folder and machine stay.
      if entry.contains("-kept-") {
        if let key = entry.split(separator: "-").first, key.count == 12 { live.insert(String(key)) }
        continue
      }
      let pid = Int32(entry.split(separator: "-").last ?? "") ?? 0
      // EPERM: alive, but another user's process (never take it for a leftover).
      if pid == getpid() || (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)) {
        if let key = entry.split(separator: "-").first, key.count == 12, key.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
          live.insert(String(key))
        }
      } else {
        try? SafeFiles.remove(entry, inFolder: ".staging", of: imageDirectory)
      }
    }
    let isLive = { (name: String) in live.contains(where: { name.hasSuffix($0) || name.contains("-\($0).") }) }
    for name in try machines.buildMachineNames() where !isLive(name) { try machines.removeBuildMachine(name: name) }
    if machines !== host {  // leftovers of bakes from before build machines ran locally
      for name in try host.buildMachineNames() where !isLive(name) { try host.removeBuildMachine(name: name) }
    }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: imageDirectory)) ?? []
    // Only files named like Drover's own artifacts (`<name>-<version>-<12 hex>.qcow2`): anything
    // else in the folder is not Drover's to delete.
    for name in names where ImageNames.isArtifact(name) && !isLive(name) {
      let manifest = (name as NSString).deletingPathExtension + ".manifest.json"
      if !names.contains(manifest) { SafeFiles.removeFile(name, in: imageDirectory) }
    }
  }
}

/// Paths inside an image root being written on the host.
public enum ImageTree {
  /// `realpath(3)`: every link resolved, or nil when the path does not exist.
  static func resolved(_ path: String) -> String? {
    guard let pointer = realpath(path, nil) else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
  }

  /// The host path of `path` inside `root`, its folders created, none of them a symlink, and
  /// nothing left at the target itself (a symlink there is removed, never written through).
  public static func prepareTarget(root: String, path: String) throws -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    guard path.hasPrefix("/"), !parts.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
      throw Diagnostic.error("bake.input", "file path \(path) is not a normalised absolute path inside the image", subject: path)
    }
    var current = root
    for part in parts.dropLast() {
      current += "/" + part
      var st = stat()
      if lstat(current, &st) != 0 {
        guard mkdir(current, 0o755) == 0 else {
          throw Diagnostic.error("bake.input", "cannot create \(current): \(String(cString: strerror(errno)))", subject: path)
        }
        continue
      }
      guard (st.st_mode & S_IFMT) == S_IFDIR else {
        throw Diagnostic.error(
          "bake.input", "file path \(path) goes through \(current.dropFirst(root.count)), which is \((st.st_mode & S_IFMT) == S_IFLNK ? "a symlink" : "not a folder") in the image",
          subject: path, hint: "a file is never written through a link: it could point outside the image")
      }
    }
    let target = current + "/" + (parts.last ?? "")
    var st = stat()
    if lstat(target, &st) == 0 {
      guard (st.st_mode & S_IFMT) != S_IFDIR else {
        throw Diagnostic.error("bake.input", "file path \(path) is a folder in the image", subject: path)
      }
      guard unlink(target) == 0 else { throw Diagnostic.error("bake.input", "cannot replace \(target): \(String(cString: strerror(errno)))", subject: path) }
    }
    return target
  }
}
