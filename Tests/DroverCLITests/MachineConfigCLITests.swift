import Foundation
import Testing

/// #16: only the machine's configuration (`$DROVER_CONFIG`, `/etc/drover/config.yaml`) or
/// `$DROVER_ALLOW_PATHS` widens which host files a project may name; the project cannot.
@Suite struct MachineConfigCLITests {
  func writeRecipe(_ h: CLIHarness, kernel: String) throws {
    try "name: demo\nversion: v3\nbase: {rootfs: busybox}\nkernel: \(kernel)\n"
      .write(to: h.dir.appendingPathComponent("images/v3.yaml"), atomically: true, encoding: .utf8)
  }

  var config: (CLIHarness) -> String { { $0.dir.appendingPathComponent("machine-config.yaml").path } }

  @Test func aHostKernelNeedsTheMachineToAllowIt() throws {
    let h = try CLIHarness()
    try writeRecipe(h, kernel: "/vmlinuz")
    let refused = try h.run(["validate"])
    #expect(refused.status == 1 && refused.stderr.contains("kernel '/vmlinuz' is outside the project folder") && refused.stderr.contains("images/v3.yaml:4"), "\(refused.stderr)")
    #expect(refused.stderr.contains("allow_paths"), "the hint says how the machine allows it: \(refused.stderr)")
    let byEnvironment = try h.run(["validate"], environment: ["DROVER_ALLOW_PATHS": "/srv:/vmlinuz"])
    #expect(byEnvironment.status == 0, "\(byEnvironment.stderr)")
    try "allow_paths: [/vmlinuz]\n".write(toFile: config(h), atomically: true, encoding: .utf8)
    chmod(config(h), 0o644)
    let byFile = try h.run(["validate"])
    #expect(byFile.status == 0, "\(byFile.stderr)")
  }

  /// Whoever can write the machine's configuration could widen both paths and trust.
  @Test func aMachineConfigurationOthersCanWriteIsRefused() throws {
    let h = try CLIHarness()
    try "allow_paths: [/vmlinuz]\n".write(toFile: config(h), atomically: true, encoding: .utf8)
    chmod(config(h), 0o666)
    let run = try h.run(["validate"])
    #expect(run.status == 1 && run.stderr.contains("refusing this machine's configuration: others can write it"), "\(run.stderr)")
    let plan = try h.run(["plan"])
    #expect(plan.status == 1 && plan.stderr.contains("refusing this machine's configuration"), "\(plan.stderr)")
    try FileManager.default.removeItem(atPath: config(h))
    try FileManager.default.createSymbolicLink(atPath: config(h), withDestinationPath: "/etc/hostname")
    let link = try h.run(["validate"])
    #expect(link.status == 1 && link.stderr.contains("symlink is never followed"), "\(link.stderr)")
  }

  /// #17: a transport that verifies nobody is refused before any call, unless the machine's
  /// entry for that host allows it — then every run says so.
  @Test func anUnverifiedTransportNeedsTheMachineAndIsAlwaysWarnedAbout() throws {
    let h = try CLIHarness()
    try "project: \(h.project)\nstate: {backend: local, dir: .drover}\nhosts: [{name: plain, uri: 'qemu+tcp://127.0.0.1:1/system'}]\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    try "name: \(CLIHarness.unique("tcp"))\nhosts: [plain]\nreplicas: 1\nimage: demo@v1\n".write(to: h.dir.appendingPathComponent("pools/tcp.yaml"), atomically: true, encoding: .utf8)
    let refused = try h.run(["plan", "--connect-timeout", "3"])
    #expect(refused.status == 1 && refused.stderr.contains("refused: its transport verifies nobody"), "\(refused.stderr)")
    try "hosts: {plain: {insecure: true}}\n".write(toFile: config(h), atomically: true, encoding: .utf8)
    chmod(config(h), 0o644)
    let allowed = try h.run(["plan", "--connect-timeout", "3"])
    #expect(allowed.stderr.contains("warning: host qemu+tcp://127.0.0.1:1/system is reached without verifying it"), "\(allowed.stderr)")
  }

  /// drover.yaml comes with the project: it cannot send images or state elsewhere on the host.
  @Test func theProjectFileKeepsItsFoldersInside() throws {
    let h = try CLIHarness()
    try "project: \(h.project)\nimage_dir: /etc\nstate: {backend: local, dir: /root/.ssh}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let run = try h.run(["plan"])
    #expect(run.status == 1, "\(run.stdout)")
    #expect(run.stderr.contains("image_dir '/etc'") && run.stderr.contains("state.dir '/root/.ssh'"), "\(run.stderr)")
    // A relative folder that is a committed link out of the project is seen through.
    try FileManager.default.createSymbolicLink(atPath: h.dir.path + "/store", withDestinationPath: "/etc")
    try "project: \(h.project)\nimage_dir: store/drover\nstate: {backend: local, dir: .drover}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let linked = try h.run(["plan"])
    #expect(linked.status == 1 && linked.stderr.contains("image_dir 'store/drover'") && linked.stderr.contains("resolves to /etc/drover"), "\(linked.stderr)")
    // Absolute folders inside the project, or under a root the machine allows, are fine.
    let elsewhere = h.dir.path + "-elsewhere"
    defer { try? FileManager.default.removeItem(atPath: elsewhere) }
    try "project: \(h.project)\nimage_dir: \(h.dir.path)/images-pool\nstate: {backend: local, dir: \(elsewhere)/state}\n"
      .write(to: h.dir.appendingPathComponent("drover.yaml"), atomically: true, encoding: .utf8)
    let outside = try h.run(["plan"])
    #expect(outside.stderr.contains("state.dir '\(elsewhere)/state'") && !outside.stderr.contains("image_dir"), "\(outside.stderr)")
    let allowed = try h.run(["plan"], environment: ["DROVER_ALLOW_PATHS": elsewhere])
    #expect(!allowed.stderr.contains("in drover.yaml"), "\(allowed.stderr)")
  }
}
