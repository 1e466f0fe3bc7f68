import DroverBasics
import DroverModel
import Foundation

/// The baked images in Drover's image folder, read from their manifests.
public struct ImageCatalogue: Sendable {
  public let directory: String
  public let manifests: [ImageManifest]

  public init(directory: String) {
    self.directory = directory
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    // A manifest is a file anyone with access to the folder may edit: one whose paths leave the
    // folder is not an image (never backed, served or garbage-collected).
    manifests = names.filter { $0.hasSuffix(".manifest.json") }.sorted().compactMap { name in
      FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? decoder.decode(ImageManifest.self, from: $0) }
    }.filter { $0.pathsStayInside(directory) }
  }

  /// Images known otherwise (a host's records): for decisions over them, nothing is read.
  public init(directory: String, manifests: [ImageManifest]) {
    self.directory = directory
    self.manifests = manifests
  }

  /// The newest image for a reference (`name@version`, or `name@sha256:<key prefix>`).
  public func image(for ref: ImageRef) -> ImageManifest? {
    let candidates = manifests.filter { m in
      guard m.name == ref.name else { return false }
      switch ref.selector {
      case .version(let v): return m.version == v
      case .digest(let d): return m.key.hasPrefix(d)
      }
    }
    return candidates.max { $0.created < $1.created }
  }

  public func image(forKey key: String) -> ImageManifest? { manifests.first { $0.key == key } }

  public func path(of m: ImageManifest) -> String { directory + "/" + m.artifact }

  /// Digests by reference, for the planner and drift (`demo@v1` → key).
  public var digestsByReference: [String: String] {
    var result: [String: String] = [:]
    for m in manifests.sorted(by: { $0.created < $1.created }) { result[m.reference] = m.key }
    return result
  }
}
