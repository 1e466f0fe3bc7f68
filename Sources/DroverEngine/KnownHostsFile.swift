import DroverBasics
import Foundation

/// `.drover/hosts.<project>`: the hosts where a project was seen owning nodes (see
/// `ProjectHosts`), one libvirt URI per line; a line starting with `#` is a comment.
///
/// Why a file and not libvirt: a host no pool file names can only be found again if something
/// remembers it. The file is local state, not a source of truth: it only says where to look; what
/// is there is always read from libvirt. It is read as untrusted input (anyone can edit it): only
/// a regular file, at most 1 MiB, each line a URI the caller's rule accepts — anything else is a
/// located error, never a connection attempt. One file per project: a folder used by two
/// projects never has one forget the other's hosts.
public enum KnownHostsFile {
  public static func path(in stateDirectory: String, project: String) -> String { "\(stateDirectory)/hosts.\(project)" }

  static let maxBytes = 1 << 20

  /// The remembered hosts; none when the file does not exist. `isAcceptable` is the URI rule (the
  /// one pool files obey, minus anything that makes libvirt run a program).
  public static func read(stateDirectory: String, project: String, isAcceptable: (String) -> Bool) -> Result<Set<String>, Diagnostic> {
    let file = path(in: stateDirectory, project: project)
    let contents: StateFile.Contents
    switch StateFile.read(file, maxBytes: maxBytes, tooLarge: "over 1 MiB") {
    case .success(nil): return .success([])
    case .success(let read?): contents = read
    case .failure(let problem): return .failure(unreadable(file, problem.reason))
    }
    guard let text = String(validating: contents.bytes, as: UTF8.self) else { return .failure(unreadable(file, "not UTF-8")) }
    return parse(text, file: file, isAcceptable: isAcceptable)
  }

  static func parse(_ text: String, file: String, isAcceptable: (String) -> Bool) -> Result<Set<String>, Diagnostic> {
    var hosts: Set<String> = []
    // "\r\n" is one Character in Swift: without this a CRLF file would be one long line.
    let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
    for (n, raw) in lines.enumerated() {
      let uri = raw.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
      if uri.isEmpty || uri.hasPrefix("#") { continue }
      guard isAcceptable(uri) else {
        return .failure(
          .error(
            "state.hosts", "line \(n + 1) of \(file) is not a libvirt URI Drover accepts here: '\(uri.prefix(80))'",
            at: SourceRange(file: file, start: SourcePosition(line: n + 1, column: 1)), subject: file,
            hint: "each line holds one URI such as qemu:///system or qemu+ssh://host/system (no ext transport, no command= or netcat=)"))
      }
      hosts.insert(uri)
    }
    return .success(hosts)
  }

  /// Reads the file again under its lock (`StateFile.locked`), lets `change` decide the new set
  /// from what is there now, and replaces the file atomically.
  public static func update(
    stateDirectory: String, project: String, isAcceptable: (String) -> Bool, _ change: (Set<String>) -> Set<String>
  ) throws(Diagnostic) {
    let file = path(in: stateDirectory, project: project)
    do { try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true) } catch {
      throw cannotWrite(file, error.localizedDescription)
    }
    try StateFile.locked(file) { () throws(Diagnostic) in
      let current: Set<String>
      switch read(stateDirectory: stateDirectory, project: project, isAcceptable: isAcceptable) {
      case .success(let hosts): current = hosts
      case .failure(let problem): throw problem
      }
      let next = change(current).filter(isAcceptable)
      if next == current && FileManager.default.fileExists(atPath: file) { return }
      let text = "# Hosts where project \(project) has had nodes; Drover reads them even when no pool names them.\n"
        + next.sorted().map { $0 + "\n" }.joined()
      if let problem = StateFile.replace(file, with: Array(text.utf8), mode: 0o644) { throw cannotWrite(file, problem.reason) }
    }
  }

  static func unreadable(_ file: String, _ why: String) -> Diagnostic {
    .error(
      "state.hosts", "cannot read \(file): \(why)", subject: file,
      hint: "it lists the hosts where this project has nodes; make it a readable file of URIs, or remove it")
  }

  static func cannotWrite(_ file: String, _ why: String) -> Diagnostic {
    .error("state.hosts", "cannot write \(file): \(why)", subject: file, hint: "Drover remembers there where this project has nodes; make .drover/ writable")
  }
}
