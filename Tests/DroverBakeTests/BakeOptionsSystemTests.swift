import DroverBake
import DroverBasics
import DroverModel
import Foundation
import Testing

/// #22.5: bake like Packer users expect, on real build VMs: `--on-error=keep` leaves a failed
/// bake's disk and console, marked so no later bake removes them, and says where they are; a
/// failed bake's log is kept and named; `--force` rebuilds a cached image (the same bytes keep
/// it; other bytes are refused: a key's bytes never change).
extension BakeSystemTests {
  /// No staging folder and no build machine (baked images stay).
  func noStagingNoMachine() throws -> Bool {
    let staging = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/.staging")) ?? []
    return try staging.isEmpty && buildMachines().isEmpty
  }

  @Test func onErrorKeepLeavesTheFailedBakeAndForceRebuilds() throws {
    let failing = recipe(commands: ["echo about to fail", "exit 3"])
    let kept = #expect(throws: Diagnostic.self) {
      try self.baker().bake(failing, recipeDirectory: self.recipeDir, options: BakeOptions(keepOnError: true))
    }
    #expect(kept?.code == "bake.step-failed")
    let hint = kept?.hint ?? ""
    #expect(hint.contains("kept for debugging in \(dir)/.staging/") && hint.contains("/disk.raw") && hint.contains("mount -o loop,ro"), "\(hint)")
    #expect(hint.contains("see the build log: \(dir)/logs/"), "the log is named: \(hint)")
    let folder = try #require(hint.components(separatedBy: "kept for debugging in ").dropFirst().first?.components(separatedBy: ":").first)
    #expect(FileManager.default.fileExists(atPath: folder + "/disk.raw") && FileManager.default.fileExists(atPath: folder + "/console.log"))
    #expect(FileManager.default.fileExists(atPath: folder + "/build.log"), "its own copy of the log")
    let log = try #require(hint.components(separatedBy: "see the build log: ").dropFirst().first?.components(separatedBy: ";").first)
    #expect((try? String(contentsOfFile: log, encoding: .utf8))?.contains("about to fail") == true, "the build log holds the command's output")

    // A later bake (which removes dead bakes' leftovers first) leaves the kept one alone.
    let first = try baker().bake(recipe(), recipeDirectory: recipeDir)
    #expect(!first.cacheHit)
    #expect(FileManager.default.fileExists(atPath: folder + "/disk.raw"), "marked as kept: not a leftover")
    try FileManager.default.removeItem(atPath: folder)

    // The default cleans up (and still names the log).
    let cleaned = #expect(throws: Diagnostic.self) { try self.baker().bake(failing, recipeDirectory: self.recipeDir) }
    #expect(!(cleaned?.hint ?? "").contains("kept for debugging") && (cleaned?.hint ?? "").contains("see the build log"))
    #expect(try noStagingNoMachine())

    // --force on the cached image rebuilds it (a VM boots again): the same bytes keep the cached
    // image; other bytes are refused and the cached image stays as it was.
    let hit = try baker().bake(recipe(), recipeDirectory: recipeDir)
    #expect(hit.cacheHit)
    let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(hit.manifest.artifact)"))
    do {
      let forced = try baker().bake(recipe(), recipeDirectory: recipeDir, options: BakeOptions(force: true))
      #expect(!forced.cacheHit && forced.machinesBooted == 1 && forced.forced == .identical, "\(String(describing: forced.forced))")
      #expect(forced.manifest.key == first.manifest.key && forced.manifest.artifactSHA256 == hit.manifest.artifactSHA256)
    } catch let refused as Diagnostic {
      #expect(refused.code == "bake.force-differs", "\(refused.message)")
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(hit.manifest.artifact)")) == before, "the cached image's bytes never change")
    #expect(try noStagingNoMachine())
  }
}
