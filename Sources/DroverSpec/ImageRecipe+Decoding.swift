import Foundation
import DroverBasics
import DroverModel
import LibYAML

/// A decoded recipe and where its name was written (for duplicate and reference diagnostics).
public struct LoadedRecipe: Sendable {
  public var recipe: ImageRecipe
  public var file: String
  public var nameRange: SourceRange
  /// Where `base` was written: bake errors about it (a package that does not exist, an image
  /// without a kernel) point there.
  public var baseRange: SourceRange? = nil
}

enum RecipeDecoder {
  static func decode(_ root: YAMLNode, context: inout DecodeContext) -> LoadedRecipe? {
    var reader = MappingReader(root, what: "image recipe", context: &context)
    guard reader.isMapping else { return nil }
    let nameNode = reader.required("name", context: &context)
    let name = nameNode.flatMap { context.name($0, "name") }
    let version = reader.required("version", context: &context, hint: "for example: version: v1").flatMap {
      node -> String? in
      guard let v = context.string(node, "version") else { return nil }
      guard ImageRef.isName(Substring(v)), !v.hasPrefix("sha256") else {
        context.error("spec.name", "version must be letters, digits, '-', '_' or '.', such as v1 or 2024.05", at: node)
        return nil
      }
      return v
    }
    let baseNode = reader.optional("base")
    let base = reader.required(
      "base", context: &context, hint: "base: {rootfs: busybox}, {debian: bookworm, packages: [...]}, {file: …, sha256: …} or {image: name@version}")
      .flatMap { decodeBase($0, context: &context) }
    let files = reader.optional("files").map { decodeFiles($0, context: &context) } ?? []
    let commands = reader.optional("commands").flatMap { context.stringList($0, "commands") } ?? []
    let timeout = reader.optional("command_timeout").flatMap { context.timeSpan($0, "command_timeout") } ?? .minutes(10)
    let kernel = reader.optional("kernel").flatMap { context.hostPath($0, "kernel") }
    let initrd = reader.optional("initrd").flatMap { context.hostPath($0, "initrd") }
    let cmdline = reader.optional("cmdline").flatMap { context.string($0, "cmdline") }
    // A Debian root filesystem is hundreds of MiB: its default disk is 2 GiB.
    let defaultSize: ByteSize = if case .debian = base { .mebibytes(2048) } else { .mebibytes(64) }
    let size = reader.optional("size").flatMap { context.byteSize($0, "size", min: .mebibytes(1), max: .mebibytes(64 << 20)) }
      ?? defaultSize
    var format = "qcow2"
    if let n = reader.optional("format"), let f = context.string(n, "format") {
      if f == "qcow2" { format = f } else {
        context.error("spec.image.format", "format must be qcow2", at: n, hint: "nodes boot from qcow2 overlays of the image")
      }
    }
    let compression = reader.optional("compression").flatMap {
      enumValue($0, "compression", ImageRecipe.Compression.self, &context)
    } ?? ImageRecipe.Compression.none
    if initrd != nil && kernel == nil {
      context.error("spec.missing-key", "initrd needs a kernel", at: root, hint: "add kernel: PATH, or drop initrd to build one for the machine's kernel")
    }
    reader.finish(context: &context)
    guard let name, let version, let base, let nameNode else { return nil }
    let recipe = ImageRecipe(
      name: name, version: version, base: base, files: files, commands: commands, commandTimeout: timeout,
      kernel: kernel, initrd: initrd, cmdline: cmdline, size: size, format: format, compression: compression)
    return LoadedRecipe(recipe: recipe, file: context.file, nameRange: context.range(nameNode), baseRange: baseNode.map { context.range($0) })
  }

  static func decodeBase(_ node: YAMLNode, context: inout DecodeContext) -> ImageRecipe.Base? {
    var reader = MappingReader(node, what: "base", context: &context)
    guard reader.isMapping else { return nil }
    let present = ["file", "image", "rootfs", "debian"].filter { reader.has($0) }
    guard present.count == 1 else {
      context.error(
        "spec.image.base", present.isEmpty ? "base needs one of: file, image, rootfs, debian" : "base must have only one of: \(present.joined(separator: ", "))",
        at: node)
      return nil
    }
    var result: ImageRecipe.Base?
    switch present[0] {
    case "file":
      let path = reader.required("file", context: &context).flatMap { context.hostPath($0, "base file") }
      let sha = reader.required("sha256", context: &context, hint: "pin the base file: sha256sum FILE").flatMap {
        node -> String? in
        guard let s = context.string(node, "sha256") else { return nil }
        guard s.count == 64, s.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
          context.error("spec.image.sha256", "sha256 must be 64 lower-case hex digits", at: node)
          return nil
        }
        return s
      }
      if let path, let sha { result = .file(path: path, sha256: sha) }
    case "debian":
      result = decodeDebian(&reader, context: &context)
    case "image":
      result = reader.required("image", context: &context).flatMap { PoolDecoder.imageRef($0, context: &context) }.map {
        .image($0)
      }
    default:
      if let n = reader.required("rootfs", context: &context), let kind = context.string(n, "rootfs") {
        if kind == "busybox" { result = .rootfs(kind) } else {
          context.error("spec.image.base", "rootfs must be 'busybox'", at: n)
        }
      }
    }
    reader.finish(context: &context)
    return result
  }

  /// `debian: SUITE` with `packages`, `variant` and `components`: every name is checked here, so
  /// nothing from a recipe reaches mmdebstrap's command line but plain names.
  static func decodeDebian(_ reader: inout MappingReader, context: inout DecodeContext) -> ImageRecipe.Base? {
    func words(_ key: String, _ check: (String) -> Bool, _ what: String) -> [String]? {
      guard let node = reader.optional(key) else { return nil }
      guard case .sequence(let items) = node.content else {
        context.error("spec.type", "\(key) must be a list, not \(node.kindDescription)", at: node)
        return []
      }
      return items.compactMap { item in
        guard let text = context.string(item, key) else { return nil }
        guard check(text) else {
          context.error("spec.image.debian", "'\(Terminal.escaped(text))' is not \(what)", at: item)
          return nil
        }
        return text
      }
    }
    var suite: String?
    if let n = reader.required("debian", context: &context), let text = context.string(n, "debian") {
      if ImageRecipe.DebianBase.isWord(text) { suite = text } else {
        context.error("spec.image.debian", "debian must name a suite, such as bookworm", at: n)
      }
    }
    let packages = words("packages", ImageRecipe.DebianBase.isPackageName, "a Debian package name (lower case, digits, '+', '-', '.')") ?? []
    let components = words("components", ImageRecipe.DebianBase.isWord, "a component name such as main or contrib") ?? ["main"]
    var variant = "minbase"
    if let n = reader.optional("variant"), let text = context.string(n, "variant") {
      if ImageRecipe.DebianBase.variants.contains(text) { variant = text } else {
        context.error(
          "spec.image.debian", "variant must be one of: \(ImageRecipe.DebianBase.variants.joined(separator: ", "))", at: n)
      }
    }
    guard let suite else { return nil }
    return .debian(ImageRecipe.DebianBase(suite: suite, packages: packages, variant: variant, components: components.isEmpty ? ["main"] : components))
  }

  static func decodeFiles(_ node: YAMLNode, context: inout DecodeContext) -> [ImageRecipe.File] {
    guard case .sequence(let items) = node.content else {
      context.error("spec.type", "files must be a list, not \(node.kindDescription)", at: node)
      return []
    }
    return items.compactMap { item in
      var reader = MappingReader(item, what: "file entry", context: &context)
      guard reader.isMapping else { return nil }
      let sourceNode = reader.required("source", context: &context)
      let source = sourceNode.flatMap { context.string($0, "source") }
      let pathNode = reader.required("path", context: &context)
      let path = pathNode.flatMap { context.string($0, "path") }
      var mode: UInt16 = 0o644
      if let m = reader.optional("mode"), let text = context.string(m, "mode") {
        if text.count >= 3, text.count <= 4, let v = UInt16(text, radix: 8), v <= 0o7777 { mode = v } else {
          context.error("spec.type", "mode must be octal, such as \"0755\"", at: m)
        }
      }
      if let path, let pathNode, let why = RecipePaths.imagePathProblem(path) {
        context.error("spec.path.image", "path '\(Terminal.escaped(path))' \(why)", at: pathNode, hint: "for example: path: /etc/motd")
      }
      if let source, let sourceNode, let why = RecipePaths.sourceProblem(source) {
        context.error(
          "spec.path.source", "source '\(Terminal.escaped(source))' \(why)", at: sourceNode,
          hint: "put the file under images/ (for example source: files/motd); recipes come from pull requests and never read the host's files")
      }
      reader.finish(context: &context)
      guard let source, let path, RecipePaths.imagePathProblem(path) == nil, RecipePaths.sourceProblem(source) == nil else { return nil }
      return ImageRecipe.File(source: source, path: path, mode: mode)
    }
  }
}

/// The path rules of recipe files: a recipe arrives in a pull request and is baked as root.
public enum RecipePaths {
  /// Why `path` is not a normalised absolute path inside the image, or nil.
  public static func imagePathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return "must be absolute inside the image" }
    let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    if parts.isEmpty || parts == [""] { return "must name a file, not the image root" }
    if parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) { return "must be normalised: no '..', '.' or empty components" }
    if Terminal.hasControlCharacters(path) { return "must not contain control characters" }
    return nil
  }

  /// Why `source` is not a relative path inside the recipe's folder, or nil.
  public static func sourceProblem(_ source: String) -> String? {
    if source.isEmpty { return "must name a file" }
    if source.hasPrefix("/") || source.hasPrefix("~") { return "must be a relative path inside the project's images/ folder" }
    let parts = source.split(separator: "/", omittingEmptySubsequences: false)
    if parts.contains(where: { $0 == ".." || $0.isEmpty }) { return "must stay inside the images/ folder: no '..' or empty components" }
    if Terminal.hasControlCharacters(source) { return "must not contain control characters" }
    return nil
  }
}
