import DroverBasics
import Foundation

/// Finds and reads spec files from the paths a user gave.
///
/// The only I/O of this module; everything after the bytes are read is pure.
public enum SpecFiles {
  /// Reads `paths` (files or folders; folders give their `*.yaml`/`*.yml` files, sorted).
  ///
  /// A missing path, an unreadable file or one over the size limit is a diagnostic, never a crash.
  public static func read(_ paths: [String], maxBytes: Int = 1 << 20) -> ([SpecSource], [Diagnostic]) {
    var sources: [SpecSource] = []
    var diagnostics: [Diagnostic] = []
    let fm = FileManager.default
    for path in paths {
      var isDirectory: ObjCBool = false
      guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
        diagnostics.append(.error("spec.file.missing", "no such file or folder", subject: path))
        continue
      }
      var files: [String] = [path]
      if isDirectory.boolValue {
        let names: [String]
        do { names = try fm.contentsOfDirectory(atPath: path) } catch {
          diagnostics.append(
            .error("spec.folder.unreadable", "cannot list the folder: \(Self.reason(error))", subject: path, hint: "check its permissions"))
          continue
        }
        files = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map {
          path.hasSuffix("/") ? path + $0 : path + "/" + $0
        }
      }
      for file in files {
        let size = ((try? fm.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.intValue ?? 0
        if size > maxBytes {
          diagnostics.append(
            .error(
              "spec.file.too-large", "file is \(size) bytes; spec files are limited to \(maxBytes) bytes",
              at: SourceRange(file: file, start: SourcePosition(line: 1, column: 1))))
          continue
        }
        guard let data = fm.contents(atPath: file) else {
          diagnostics.append(.error("spec.file.unreadable", "cannot read file", subject: file))
          continue
        }
        sources.append(SpecSource(path: file, kind: kind(of: file), bytes: [UInt8](data)))
      }
    }
    return (sources, diagnostics)
  }

  static func reason(_ error: Error) -> String {
    ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) } ?? "permission denied or not a folder"
  }

  static func kind(of path: String) -> SpecKind {
    let parts = path.split(separator: "/")
    return parts.dropLast().last == "images" ? .recipe : .pool
  }
}
