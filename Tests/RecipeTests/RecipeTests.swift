import Foundation
import LibYAML
import Testing

/// The drift and CI recipes shipped in contrib/ are well-formed (no systemd here, so a parse check
/// stands in for `systemd-analyze verify`).
@Suite struct RecipeTests {
  static let contrib = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("contrib")

  /// Sections → keys → values of a systemd unit file; fails on any line that is not one of those.
  static func unit(_ name: String) throws -> [String: [String: [String]]] {
    let text = try String(contentsOf: contrib.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
    var sections: [String: [String: [String]]] = [:]
    var current: String?
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("[") && line.hasSuffix("]") {
        current = String(line.dropFirst().dropLast())
        sections[current!] = [:]
        continue
      }
      let parts = line.split(separator: "=", maxSplits: 1)
      #expect(parts.count == 2 && current != nil, "\(name): not a key=value line: \(line)")
      guard parts.count == 2, let section = current else { continue }
      sections[section]![String(parts[0]), default: []].append(String(parts[1]))
    }
    return sections
  }

  @Test func serviceUnitIsValid() throws {
    let service = try Self.unit("drover-drift.service")
    #expect(Set(service.keys) == ["Unit", "Service"])
    #expect(service["Service"]?["Type"] == ["oneshot"])
    let exec = try #require(service["Service"]?["ExecStart"]?.first)
    #expect(exec.hasPrefix("/") && exec.contains(" drift ") && exec.contains("--prometheus"))
    #expect(service["Service"]?["SuccessExitStatus"] == ["2"], "drift found is not a failed unit")
  }

  @Test func timerUnitIsValid() throws {
    let timer = try Self.unit("drover-drift.timer")
    #expect(timer["Timer"]?["Unit"] == ["drover-drift.service"])
    #expect(timer["Timer"]?["OnUnitActiveSec"] == ["15min"])
    #expect(timer["Install"]?["WantedBy"] == ["timers.target"])
  }

  /// #20: `drover watch` as a service (SIGTERM ends it, restarts on failure) and `drover heal`
  /// as a timer (exit 2, unhealthy nodes left, is not a failed unit). Their commands are
  /// checked against the real binary by `HealCLITests`.
  @Test func healServiceAndTimerAreValid() throws {
    let watch = try Self.unit("drover-watch.service")
    #expect(watch["Service"]?["Type"] == ["simple"] && watch["Service"]?["KillSignal"] == ["SIGTERM"] && watch["Service"]?["Restart"] == ["on-failure"])
    let watchExec = try #require(watch["Service"]?["ExecStart"]?.first)
    #expect(watchExec.hasPrefix("/") && watchExec.contains(" watch --interval ") && watchExec.contains("--textfile"))
    let heal = try Self.unit("drover-heal.service")
    #expect(heal["Service"]?["Type"] == ["oneshot"] && heal["Service"]?["SuccessExitStatus"] == ["2"])
    #expect(heal["Service"]?["ExecStart"]?.first?.contains(" heal --textfile ") == true)
    let timer = try Self.unit("drover-heal.timer")
    #expect(timer["Timer"]?["Unit"] == ["drover-heal.service"] && timer["Install"]?["WantedBy"] == ["timers.target"])
  }

  @Test func cronLineHasScheduleUserAndCommand() throws {
    let text = try String(contentsOf: Self.contrib.appendingPathComponent("cron/drover-drift"), encoding: .utf8)
    let jobs = text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.contains("=") }
    #expect(jobs.count == 1)
    let fields = jobs[0].split(separator: " ", maxSplits: 6)
    #expect(fields.count == 7)
    #expect(fields[0] == "*/15" && fields[5] == "root")
    #expect(fields[6].contains("drover drift"))
  }
}
