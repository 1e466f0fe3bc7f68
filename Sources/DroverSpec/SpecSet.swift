import DroverBasics
import DroverModel
import LibYAML

/// Every pool and recipe of a project, decoded and cross-checked.
public struct SpecSet: Sendable {
  public var pools: [LoadedPool] = []
  public var recipes: [LoadedRecipe] = []

  public init(pools: [LoadedPool] = [], recipes: [LoadedRecipe] = []) {
    self.pools = pools
    self.recipes = recipes
  }

  public var poolSpecs: [PoolSpec] { pools.map(\.spec) }
}

/// What a spec file declares, decided by its folder: files under `images/` are recipes.
/// What a spec file holds; `project` is `drover.yaml`, read on its own by `ProjectFile`.
public enum SpecKind: Sendable { case pool, recipe, project }

/// One spec file's bytes as read from disk.
public struct SpecSource: Sendable {
  public var path: String
  public var kind: SpecKind
  public var bytes: [UInt8]

  public init(path: String, kind: SpecKind, bytes: [UInt8]) {
    self.path = path
    self.kind = kind
    self.bytes = bytes
  }
}

/// Turns spec files into a `SpecSet` and every problem found in them.
///
/// Pure: takes bytes, returns values and diagnostics; never opens a libvirt connection.
public enum SpecLoader {
  public static let limits = YAMLLimits(maxBytes: 1 << 20, maxDepth: 32, maxExpandedNodes: 20_000)

  /// - Parameters:
  ///   - machine: what this machine's configuration allows (named hosts, host-file roots).
  ///   - projectFolder: the project folder, whose files specs may name by absolute path too.
  ///   - hosts: the project's host entries (drover.yaml), which pool files may name.
  ///   - defaultWindow: drover.yaml's `window:`, for the pools that name none.
  public static func load(
    _ sources: [SpecSource], machine: MachineSettings = MachineSettings(), projectFolder: String? = nil, hosts: [HostEntry] = [],
    defaultWindow: MaintenanceWindow? = nil
  ) -> (SpecSet, [Diagnostic]) {
    var set = SpecSet()
    var diagnostics: [Diagnostic] = []
    let policy = HostPathPolicy(project: projectFolder, allowed: machine.allowedRoots)
    for source in sources {
      var context = DecodeContext(file: source.path)
      context.machine = machine
      context.hostPaths = policy
      context.hostDirectory = HostDirectory(entries: hosts, machine: machine)
      if let root = document(of: source, context: &context) {
        switch source.kind {
        case .pool: if let pool = PoolDecoder.decode(root, context: &context) { set.pools.append(pool) }
        case .recipe: if let recipe = RecipeDecoder.decode(root, context: &context) { set.recipes.append(recipe) }
        case .project: break
        }
      }
      diagnostics += context.diagnostics
    }
    diagnostics += crossCheck(set)
    // drover.yaml's window is every pool's that names none (#44).
    if let defaultWindow {
      for i in set.pools.indices where set.pools[i].spec.window == nil { set.pools[i].spec.window = defaultWindow }
    }
    return (set, diagnostics.sortedForDisplay())
  }

  /// The single document of a file, or nil with a diagnostic for empty, multi-document or broken YAML.
  static func document(of source: SpecSource, context: inout DecodeContext) -> YAMLNode? {
    let documents: [YAMLNode]
    do {
      documents = try YAMLParser.parseDocuments(source.bytes, limits: limits)
    } catch {
      let position = error.mark.map { SourcePosition(line: $0.line, column: $0.column, byte: $0.offset) }
        ?? SourcePosition(line: 1, column: 1)
      context.diagnostics.append(
        .error("spec.yaml.syntax", error.message, at: SourceRange(file: source.path, start: position)))
      return nil
    }
    guard let first = documents.first, !(documents.count == 1 && first.isNull) else {
      context.diagnostics.append(
        .error(
          "spec.file.empty", "file is empty", at: SourceRange(file: source.path, start: SourcePosition(line: 1, column: 1)),
          hint: source.kind == .pool
            ? "a pool file needs at least name, hosts, replicas and image"
            : source.kind == .project ? "a project file needs at least project: NAME" : "a recipe needs name, version and base"))
      return nil
    }
    if documents.count > 1 {
      context.error(
        "spec.file.multi-document", "file holds \(documents.count) YAML documents; one is expected", at: documents[1],
        hint: source.kind == .project ? "drover.yaml holds one document" : "put each \(source.kind == .pool ? "pool" : "recipe") in its own file")
      return nil
    }
    return first
  }

  static func crossCheck(_ set: SpecSet) -> [Diagnostic] {
    var diagnostics: [Diagnostic] = []
    var poolsByName: [String: LoadedPool] = [:]
    for pool in set.pools {
      if let first = poolsByName[pool.spec.name] {
        diagnostics.append(
          .error(
            "spec.pool.duplicate-name", "pool '\(pool.spec.name)' is also defined in \(first.file)", at: pool.nameRange,
            hint: "pool names must be unique across pools/"))
      } else {
        poolsByName[pool.spec.name] = pool
      }
    }
    var recipesByRef: [String: LoadedRecipe] = [:]
    for recipe in set.recipes {
      let ref = recipe.recipe.reference.description
      if let first = recipesByRef[ref] {
        diagnostics.append(
          .error("spec.image.duplicate", "image '\(ref)' is also defined in \(first.file)", at: recipe.nameRange))
      } else {
        recipesByRef[ref] = recipe
      }
    }
    let recipeNames = Set(set.recipes.map(\.recipe.name))
    for pool in set.pools {
      let ref = pool.spec.image
      let known: Bool
      switch ref.selector {
      case .version: known = recipesByRef[ref.description] != nil
      case .digest: known = recipeNames.contains(ref.name)
      }
      if !known {
        let candidates = set.recipes.map { $0.recipe.reference.description }
        let hint = nearest(ref.description, in: candidates).map { "did you mean '\($0)'?" }
          ?? (candidates.isEmpty ? "no recipes were found in images/" : "known images: \(candidates.sorted().joined(separator: ", "))")
        diagnostics.append(
          .error("spec.image.unknown", "image '\(ref)' names no recipe in images/", at: pool.imageRange, hint: hint))
      }
    }
    return diagnostics
  }
}
