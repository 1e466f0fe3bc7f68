import Foundation
import LibYAML
import Testing

/// #40: the CI recipes keep the project key and the state password away from anything a pull
/// request can run — a same-repository pull request edits the workflow it runs — and pass the
/// checks of tools nobody here wrote: zizmor's audit (GitHub) and the vendors' JSON schemas.
@Suite struct CIRecipeSecretsTests {
  typealias R = CIRecipeTests
  static let tools = "/var/lib/drover/ci-tools-venv/bin"
  static var toolsInstalled: Bool { FileManager.default.isExecutableFile(atPath: tools + "/zizmor") && FileManager.default.isExecutableFile(atPath: tools + "/check-jsonschema") }

  /// Every scalar under `node`, as one text (where a secret could be named).
  static func text(_ node: YAMLNode?) -> String {
    guard let node else { return "" }
    switch node.content {
    case .scalar(let s): return s
    case .sequence(let items): return items.map(text).joined(separator: "\n")
    case .mapping(let pairs): return pairs.map { text($0.key) + "\n" + text($0.value) }.joined(separator: "\n")
    default: return ""
    }
  }

  /// GitHub: the jobs a pull request's run can reach that name a secret, or that name one outside
  /// an environment (repository secrets reach every branch's run; an environment limited to main
  /// does not). A job is out of a pull request's reach when its `if:` excludes the event (or
  /// asks for main or a schedule), or when it needs such a job.
  static func githubViolations(_ root: YAMLNode) -> [String] {
    let jobs = R.value(root, "jobs")
    var unreachable: Set<String> = []
    var changed = true
    while changed {
      changed = false
      for job in R.keys(jobs) where !unreachable.contains(job) {
        let node = R.value(jobs, job)
        let condition = R.value(node, "if")?.scalar ?? ""
        let excluded = ["github.event_name != 'pull_request'", "github.event_name == 'schedule'", "github.ref == 'refs/heads/main'"].contains { condition.contains($0) }
          && !condition.contains("always()") && !condition.contains("||")
        let needsExcluded = R.strings(R.value(node, "needs")).contains { unreachable.contains($0) } && !condition.contains("always()")
        if excluded || needsExcluded {
          unreachable.insert(job)
          changed = true
        }
      }
    }
    return R.keys(jobs).compactMap { job in
      let node = R.value(jobs, job)
      guard text(node).contains("secrets.") else { return nil }
      if !unreachable.contains(job) { return "\(job): reachable from a pull request and names a secret" }
      if R.value(node, "environment") == nil { return "\(job): names a secret outside an environment" }
      return nil
    }
  }

  /// GitLab: jobs a merge request's pipeline runs (a rule naming merge_request_event, or no rules
  /// at all) that name a secret variable or an environment (whose scoped variables are secrets),
  /// or run on the trusted runners.
  static func gitlabViolations(_ root: YAMLNode) -> [String] {
    let reserved: Set<String> = ["stages", "default", "variables", "include", "workflow"]
    return R.keys(root).filter { !reserved.contains($0) && !$0.hasPrefix(".") }.compactMap { job in
      let node = R.value(root, job)
      let rules = R.items(R.value(node, "rules"))
      let reachable = rules.isEmpty || rules.contains { (R.value($0, "if")?.scalar ?? "").contains("merge_request_event") }
      guard reachable else { return nil }
      let body = text(node)
      if body.contains("DROVER_STATE_PASSWORD") || body.contains("DROVER_PROJECT_KEY") { return "\(job): reachable from a merge request and names a secret" }
      if R.value(node, "environment") != nil { return "\(job): reachable from a merge request and enters an environment" }
      if R.strings(R.value(node, "tags")) != ["drover-validate"] { return "\(job): reachable from a merge request but not on the throw-away runners" }
      return nil
    }
  }

  static func recipe(_ name: String) throws -> String {
    try String(contentsOf: R.repo.appendingPathComponent("contrib/ci/\(name)"), encoding: .utf8)
  }
  static func parse(_ text: String) throws -> YAMLNode { try #require(try YAMLParser.parseDocuments(Array(text.utf8)).first) }

  @Test func noSecretIsWithinAPullRequestsReach() throws {
    #expect(Self.githubViolations(try R.load("github-actions.yml")) == [])
    #expect(Self.gitlabViolations(try R.load("gitlab-ci.yml")) == [])
  }

  /// The checks can fail: a secret planted in the pull request's job, a secret job moved out of
  /// its environment, a merge request job given a secret or the trusted runners — each flagged.
  @Test func aPlantedSecretIsFound() throws {
    let github = try Self.recipe("github-actions.yml")
    let planted = github.replacingOccurrences(
      of: "        run: drover validate --format json", with: "        run: drover validate --format json\n        env: {K: \"${{ secrets.DROVER_PROJECT_KEY }}\"}")
    #expect(planted != github)
    #expect(Self.githubViolations(try Self.parse(planted)) == ["validate: reachable from a pull request and names a secret"])
    let outside = github.replacingOccurrences(of: "    environment: drover-main   # its secrets reach main only\n", with: "")
    #expect(outside != github)
    #expect(Self.githubViolations(try Self.parse(outside)) == ["plan: names a secret outside an environment"])

    let gitlab = try Self.recipe("gitlab-ci.yml")
    let mr = gitlab.replacingOccurrences(of: "    - drover validate --format json", with: "    - echo \"$DROVER_STATE_PASSWORD\" | drover validate --format json")
    #expect(mr != gitlab)
    #expect(Self.gitlabViolations(try Self.parse(mr)) == ["validate: reachable from a merge request and names a secret"])
    let trusted = gitlab.replacingOccurrences(of: "  tags: [drover-validate]", with: "  tags: [libvirt]")
    #expect(trusted != gitlab)
    #expect(Self.gitlabViolations(try Self.parse(trusted)) == ["validate: reachable from a merge request but not on the throw-away runners"])
  }

  /// zizmor (offline: no GitHub API) finds nothing in the GitHub recipe; both recipes validate
  /// against their vendors' schemas.
  @Test(.enabled(if: toolsInstalled, "needs zizmor and check-jsonschema (bash scripts/setup installs them)"))
  func theToolsNobodyHereWroteFindNothing() throws {
    let github = R.repo.appendingPathComponent("contrib/ci/github-actions.yml").path
    let gitlab = R.repo.appendingPathComponent("contrib/ci/gitlab-ci.yml").path
    let audit = try ToolRun.run(Self.tools + "/zizmor", ["--offline", "--no-progress", github])
    #expect(audit.status == 0 && audit.output.contains("No findings"), "\(audit.output)")
    for (file, schema) in [(github, "vendor.github-workflows"), (gitlab, "vendor.gitlab-ci")] {
      let check = try ToolRun.run(Self.tools + "/check-jsonschema", ["--builtin-schema", schema, file])
      #expect(check.status == 0, "\(schema): \(check.output)")
    }
  }
}

/// Runs a tool to its end: its exit status and everything it printed.
enum ToolRun {
  static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
  }
}
