import Foundation
import Testing

/// #22.1: the Debian package (`scripts/package --debug --out .build/deb`, which scripts/test runs
/// before the tests) installs into a scratch root with dpkg, and the drover it installs runs
/// with the Swift toolchain hidden (a mount namespace puts an empty folder over /opt/swift): the
/// runtime is in the binary. Its man pages cover every command and its completions and units
/// are in place.
enum DebianPackage {
  static var path: String? {
    if let given = ProcessInfo.processInfo.environment["DROVER_PACKAGE"] { return given }
    let folder = CLIHarness.repo.appendingPathComponent(".build/deb").path
    return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix("drover_") && $0.hasSuffix(".deb") }
      .sorted().last.map { folder + "/" + $0 }
  }
  /// scripts/test sets DROVER_REQUIRE_PACKAGE: there the test runs (and fails) even without one.
  static var shouldRun: Bool { path != nil || ProcessInfo.processInfo.environment["DROVER_REQUIRE_PACKAGE"] == "1" }
}

@Suite(.enabled(if: DebianPackage.shouldRun, "no package: run scripts/package --debug --out .build/deb first (scripts/test does)"))
struct PackageTests {
  static func sh(_ script: String, _ args: [String] = []) throws -> (status: Int32, output: String) {
    try ToolProcess.run("/bin/sh", ["-c", script, "sh"] + args, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
  }

  @Test func theDebInstallsIntoAScratchRootAndRunsWithoutTheToolchain() throws {
    let deb = try #require(DebianPackage.path, "no .deb in .build/deb")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("drover-root-\(UUID().uuidString.prefix(8))").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    let install = try Self.sh(
      """
      set -e
      mkdir -p "$1/var/lib/dpkg/info" "$1/var/lib/dpkg/updates" "$1/var/lib/dpkg/triggers"
      touch "$1/var/lib/dpkg/status"
      dpkg --root="$1" --force-depends --force-not-root --force-script-chrootless --log=/dev/null -i "$2"
      dpkg --root="$1" -s drover
      """, [root, deb])
    #expect(install.status == 0, "\(install.output)")
    #expect(install.output.contains("Status: install ok installed"), "\(install.output)")
    let control = try Self.sh("dpkg-deb -f \"$1\" Depends", [deb])
    #expect(control.output.contains("libvirt0") && control.output.contains("libyaml-0-2") && !control.output.contains("swift"), "\(control.output)")

    // The toolchain hidden: an empty folder over /opt/swift, no environment.
    let binary = root + "/usr/bin/drover"
    let version = try Self.sh("unshare -m sh -c 'mount -t tmpfs tmpfs /opt/swift && exec env -i \"$0\" --version' \"$1\"", [binary])
    #expect(version.status == 0, "\(version.output)")
    #expect(version.output.range(of: #"^drover \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)\nlibvirt \d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.output)")
    let linked = try Self.sh("ldd \"$1\"", [binary])
    #expect(!linked.output.contains("swift") && !linked.output.contains("libFoundation"), "\(linked.output)")

    // A man page per command (from the command definitions), completions, units on /usr/bin.
    let tree = try Self.sh("drover=\"$1\"; \"$drover\" --experimental-dump-help", [binary])
    let info = try JSONSerialization.jsonObject(with: Data(tree.output.utf8)) as? [String: Any]
    var commands: [String] = []
    func walk(_ command: [String: Any], _ path: [String]) {
      commands.append(path.joined(separator: "-"))
      for sub in command["subcommands"] as? [[String: Any]] ?? [] where sub["commandName"] as? String != "help" {
        walk(sub, path + [sub["commandName"] as? String ?? "?"])
      }
    }
    walk(try #require(info?["command"] as? [String: Any]), ["drover"])
    #expect(commands.count > 25 && commands.contains("drover-rollout-status") && commands.contains("drover-show"))
    for command in commands {
      let page = try Self.sh("gzip -dc \"$1\"", [root + "/usr/share/man/man1/\(command).1.gz"])
      #expect(page.status == 0 && page.output.hasPrefix(".TH \"\(command.uppercased())\" 1"), "\(command): \(page.output.prefix(200))")
    }
    let plan = try Self.sh("gzip -dc \"$1\"", [root + "/usr/share/man/man1/drover-plan.1.gz"])
    #expect(plan.output.contains("\\fB\\-\\-detailed\\-exitcode\\fR") || plan.output.contains("--detailed-exitcode"), "options are in the page")
    for file in ["share/bash-completion/completions/drover", "share/zsh/vendor-completions/_drover", "share/fish/vendor_completions.d/drover.fish"] {
      let text = (try? String(contentsOfFile: root + "/usr/" + file, encoding: .utf8)) ?? ""
      #expect(text.contains("drover") && text.count > 500, "\(file)")
    }
    let unit = (try? String(contentsOfFile: root + "/usr/lib/systemd/system/drover-drift.service", encoding: .utf8)) ?? ""
    #expect(unit.contains("ExecStart=/usr/bin/drover") && !unit.contains("/usr/local/bin"), "\(unit)")
  }
}
