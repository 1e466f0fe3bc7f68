import Foundation
import LibYAML
import Testing

/// #21.4: the CI recipes (GitHub Actions and GitLab CI) parse, have the pipeline's shape —
/// validate → bake → plan to an artifact → a manual approval → apply that artifact, with the
/// project key and the state password from the CI's secrets, and drift on a schedule — and every
/// `drover` command they run exists with every flag they give it (its `--help` is run and read).
@Suite struct CIRecipeTests {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let binary = repo.appendingPathComponent(".build/debug/drover").path

  static func load(_ name: String) throws -> YAMLNode {
    let bytes = [UInt8](try Data(contentsOf: repo.appendingPathComponent("contrib/ci/\(name)")))
    let docs = try YAMLParser.parseDocuments(bytes)
    return try #require(docs.count == 1 ? docs.first : nil)
  }

  // MARK: YAML navigation

  static func value(_ node: YAMLNode?, _ key: String) -> YAMLNode? {
    guard case .mapping(let pairs)? = node?.content else { return nil }
    return pairs.first { $0.key.scalar == key }?.value
  }
  static func keys(_ node: YAMLNode?) -> [String] {
    guard case .mapping(let pairs)? = node?.content else { return [] }
    return pairs.compactMap(\.key.scalar)
  }
  static func items(_ node: YAMLNode?) -> [YAMLNode] {
    guard case .sequence(let items)? = node?.content else { return [] }
    return items
  }
  static func strings(_ node: YAMLNode?) -> [String] {
    if let s = node?.scalar { return [s] }
    return items(node).compactMap(\.scalar)
  }

  // MARK: Commands

  /// Every `drover …` invocation in a script: its subcommand path and the flags it passes.
  static func droverCommands(_ script: String) -> [(path: [String], flags: [String])] {
    var found: [(path: [String], flags: [String])] = []
    for line in script.split(separator: "\n") {
      let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
      let tokens = code.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
      for (i, token) in tokens.enumerated() where token == "drover" {
        var path: [String] = []
        var flags: [String] = []
        for t in tokens[(i + 1)...] {
          if [";", "|", "||", "&&", ">", ">>", "2>&1", "then", "}", "]"].contains(t) || t.hasPrefix(">") { break }
          if t.hasPrefix("--") {
            flags.append(String(t.split(separator: "=").first ?? ""))
          } else if flags.isEmpty, path.count < 2, t.allSatisfy({ $0.isLowercase }), t.count > 1 {
            path.append(t)
          } else if !t.hasPrefix("-") {
            continue
          }
        }
        found.append((path, flags))
      }
    }
    return found
  }

  /// Runs `drover <path> --help`: what is wrong with the call (not a command, a flag it lacks).
  static func problems(_ command: (path: [String], flags: [String])) throws -> [String] {
    let (status, text) = try ToolRun.run(binary, command.path + ["--help"])
    let shown = "drover \(command.path.joined(separator: " "))"
    guard !command.path.isEmpty, status == 0, text.contains("USAGE: \(shown)") else {
      return ["'\(shown)' is not a command: \(text.prefix(200))"]
    }
    return command.flags.filter { flag in !(text.contains(flag + " ") || text.contains(flag + "\n") || text.contains(flag + ",")) }
      .map { "\(shown) has no \($0)" }
  }

  @Test func githubActionsRecipeHasThePipelineAndOnlyRealCommands() throws {
    let root = try Self.load("github-actions.yml")
    let jobs = Self.value(root, "jobs")
    #expect(Self.keys(jobs) == ["validate", "bake", "plan", "apply", "drift"])
    #expect(Self.strings(Self.value(Self.value(jobs, "bake"), "needs")) == ["validate"])
    #expect(Self.strings(Self.value(Self.value(jobs, "plan"), "needs")) == ["bake"])
    let apply = Self.value(jobs, "apply")
    #expect(Self.strings(Self.value(apply, "needs")) == ["plan"])
    #expect(Self.value(apply, "environment")?.scalar == "production", "the approval: an environment with reviewers")
    #expect(Self.value(Self.value(root, "on"), "schedule") != nil)
    #expect(Self.value(Self.value(jobs, "drift"), "if")?.scalar == "github.event_name == 'schedule' && github.ref == 'refs/heads/main'")
    // Pull requests only validate, and never a fork's; bake and plan run on main only.
    #expect(Self.value(Self.value(jobs, "validate"), "if")?.scalar?.contains("github.event.pull_request.head.repo.full_name == github.repository") == true)
    for job in ["bake", "plan"] {
      #expect(Self.value(Self.value(jobs, job), "if")?.scalar == "github.ref == 'refs/heads/main' && github.event_name != 'pull_request'", "\(job)")
    }
    // The secrets only where the state or the key is used (never validate or bake), none workflow-wide.
    #expect(Self.value(Self.value(root, "env"), "DROVER_STATE_PASSWORD") == nil && Self.value(Self.value(root, "env"), "DROVER_PROJECT_KEY") == nil)
    for job in ["plan", "apply", "drift"] {
      let env = Self.value(Self.value(jobs, job), "env")
      #expect(Self.value(env, "DROVER_STATE_PASSWORD")?.scalar == "${{ secrets.DROVER_STATE_PASSWORD }}", "\(job)")
      #expect(Self.value(env, "DROVER_PROJECT_KEY")?.scalar == "${{ secrets.DROVER_PROJECT_KEY }}", "\(job)")
    }
    for job in ["validate", "bake"] { #expect(Self.value(Self.value(jobs, job), "env") == nil, "\(job) gets no secret") }

    var scripts: [String: [String]] = [:]
    for job in Self.keys(jobs) {
      for step in Self.items(Self.value(Self.value(jobs, job), "steps")) {
        if let run = Self.value(step, "run")?.scalar { scripts[job, default: []].append(run) }
        if let uses = Self.value(step, "uses")?.scalar, uses.hasPrefix("actions/upload-artifact") {
          #expect(job == "plan" && Self.value(Self.value(step, "with"), "path")?.scalar?.contains("plans/ci.plan") == true)
        }
        if let uses = Self.value(step, "uses")?.scalar, uses.hasPrefix("actions/download-artifact") { #expect(job == "apply") }
      }
    }
    #expect(scripts["plan", default: []].joined().contains("drover plan --detailed-exitcode --out plans/ci.plan"))
    #expect(scripts["apply", default: []].contains("drover apply plans/ci.plan --json"))
    let commands = scripts.values.flatMap { $0 }.flatMap(Self.droverCommands)
    #expect(Set(commands.map { $0.path.joined(separator: " ") }) == ["validate", "bake", "plan", "show", "apply", "drift"])
    for command in commands { #expect(try Self.problems(command) == [], "github-actions.yml") }
  }

  @Test func gitlabRecipeHasThePipelineAndOnlyRealCommands() throws {
    let root = try Self.load("gitlab-ci.yml")
    #expect(Self.strings(Self.value(root, "stages")) == ["validate", "bake", "plan", "apply", "drift"])
    let jobs = Self.keys(root).filter { !["stages", "default", "variables"].contains($0) }
    #expect(jobs == ["validate", "bake", "plan", "apply", "drift"])
    for job in jobs { #expect(Self.value(Self.value(root, job), "stage")?.scalar == job) }
    let apply = Self.value(root, "apply")
    #expect(Self.strings(Self.value(apply, "needs")) == ["plan"])
    #expect(Self.items(Self.value(apply, "rules")).contains { Self.value($0, "when")?.scalar == "manual" }, "the approval")
    #expect(Self.value(apply, "environment")?.scalar == "production")
    // Merge requests only validate; bake, plan and apply run on the default (protected) branch.
    #expect(Self.items(Self.value(Self.value(root, "validate"), "rules")).contains { Self.value($0, "if")?.scalar == "$CI_PIPELINE_SOURCE == \"merge_request_event\"" })
    for job in ["bake", "plan", "apply"] {
      let rules = Self.items(Self.value(Self.value(root, job), "rules"))
      #expect(!rules.isEmpty && rules.allSatisfy { Self.value($0, "if")?.scalar?.hasPrefix("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH") == true }, "\(job)")
    }
    #expect(Self.strings(Self.value(Self.value(Self.value(root, "plan"), "artifacts"), "paths")) == ["plans/"])
    #expect(Self.items(Self.value(Self.value(root, "drift"), "rules")).contains { Self.value($0, "if")?.scalar == "$CI_PIPELINE_SOURCE == \"schedule\"" })
    // The secrets are CI/CD variables (exported to every job), never values in the file.
    let text = try String(contentsOf: Self.repo.appendingPathComponent("contrib/ci/gitlab-ci.yml"), encoding: .utf8)
    #expect(text.contains("DROVER_PROJECT_KEY") && text.contains("DROVER_STATE_PASSWORD") && !text.contains("DROVER_STATE_PASSWORD:"))

    var scripts: [String: String] = [:]
    for job in jobs { scripts[job] = Self.strings(Self.value(Self.value(root, job), "script")).joined(separator: "\n") }
    #expect(scripts["plan"]?.contains("drover plan --detailed-exitcode --out plans/ci.plan") == true)
    #expect(scripts["apply"]?.contains("drover apply plans/ci.plan --json") == true)
    let commands = scripts.values.flatMap(Self.droverCommands)
    #expect(Set(commands.map { $0.path.joined(separator: " ") }) == ["validate", "bake", "plan", "show", "apply", "drift"])
    for command in commands { #expect(try Self.problems(command) == [], "gitlab-ci.yml") }
  }

  /// The checker finds what it should (so the recipe tests can fail).
  @Test func theCommandReaderFindsCommandsAndFlags() throws {
    let found = Self.droverCommands("set +e\ndrover plan --detailed-exitcode --out plans/ci.plan # note\nx && drover key export > k; drover nope --bogus")
    #expect(found.map(\.path) == [["plan"], ["key", "export"], ["nope"]])
    #expect(found.map(\.flags) == [["--detailed-exitcode", "--out"], [], ["--bogus"]])
    #expect(try Self.problems(found[0]) == [])
    #expect(try Self.problems(found[2]).first?.contains("'drover nope' is not a command") == true)
    #expect(try Self.problems((["plan"], ["--bogus"])) == ["drover plan has no --bogus"])
  }
}
