import ArgumentParser
import DroverBasics
import DroverLibvirt
import DroverModel
import DroverSpec
import Foundation

/// The host entries that keep their own image folder (`image_dir` in drover.yaml's `hosts:`):
/// what `images push`, `images fetch` and `images gc --host` work on.
enum ImageHostEntries {
  /// The entries named (all of them when `names` is empty); an unknown name is an error.
  static func select(_ names: [String], project: LoadedProject) throws -> [HostEntry] {
    let all = (project.settings?.hosts ?? []).filter { $0.imageDir != nil }
    let unknown = names.filter { n in !all.contains { $0.name == n } }
    let entries = all.filter { names.isEmpty || names.contains($0.name) }
    guard unknown.isEmpty, !entries.isEmpty else {
      throw Diagnostic.error(
        "cli.unknown-host", unknown.isEmpty ? "no host entry in drover.yaml has an image_dir" : "no host entry with an image_dir is named \(unknown.joined(separator: ", "))",
        subject: project.dir, hint: "hosts with their own image folder: hosts: [{name: …, uri: …, image_dir: …}] in drover.yaml")
    }
    return entries
  }

  /// The images the project's pool files name, sorted.
  static func poolImages(_ project: LoadedProject) -> [ImageRef] {
    let (sources, _) = SpecFiles.read([project.poolsPath].filter { FileManager.default.fileExists(atPath: $0) })
    let specs = SpecLoader.load(sources, machine: project.machine, projectFolder: project.absoluteDir, hosts: project.settings?.hosts ?? []).0
    return Set(specs.poolSpecs.map(\.image)).sorted { $0.description < $1.description }
  }

  /// Connections to `entries` (reusing `known` ones), writable: an unreachable host is an error.
  static func connect(
    _ entries: [HostEntry], project: LoadedProject, images: ImagePaths, known: [String: LibvirtHostBackend] = [:]
  ) -> (backends: [String: LibvirtHostBackend], problems: [Diagnostic]) {
    let missing = entries.map(\.uri).filter { known[$0] == nil }
    let connected = missing.isEmpty
      ? (backends: [:], unreachable: [:])
      : Connector.connect(
        missing, directory: project.hostDirectory, keyring: Keyring(project: project.projectName, key: nil), readOnly: false, timeout: project.connectTimeout,
        imagePool: images.imagePool, callTimeout: project.callTimeout, keepAlive: project.keepAlive)
    let problems = connected.unreachable.sorted { $0.key < $1.key }.map { uri, why in
      Diagnostic.error("libvirt.unreachable", "host \(uri): \(why)", subject: entries.first { $0.uri == uri }?.name ?? uri)
    }
    return (known.merging(connected.backends) { a, _ in a }, problems)
  }
}
