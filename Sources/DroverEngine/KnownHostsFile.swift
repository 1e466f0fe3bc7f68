import DroverBasics
import Foundation

/// `.drover/hosts`: the hosts where this project was seen owning nodes (see `ProjectHosts`), one
/// libvirt URI per line; `#` starts a comment.
///
/// Why a file and not libvirt: a host no pool file names can only be found again if something
/// remembers it. The file is local state, not a source of truth: it only says where to look; what
/// is there is always read from libvirt. It is read as untrusted input (anyone can edit it): a
/// line that is not a plain URI is a located error, never a connection attempt.
public enum KnownHostsFile {
  public static func path(in stateDirectory: String) -> String { stateDirectory + "/hosts" }

  /// The remembered hosts; none when the file does not exist.
  public static func read(stateDirectory: String) -> Result<Set<String>, Diagnostic> {
    let file = path(in: stateDirectory)
    guard FileManager.default.fileExists(atPath: file) else { return .success([]) }
    guard let data = FileManager.default.contents(atPath: file), data.count <= 1 << 20,
      let text = String(data: data, encoding: .utf8)
    else {
      return .failure(
        .error(
          "state.hosts", "cannot read \(file) (unreadable, over 1 MiB, or not UTF-8)", subject: file,
          hint: "it lists the hosts where this project has nodes; fix its permissions or remove it"))
    }
    var hosts: Set<String> = []
    for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
      let uri = line.trimmingCharacters(in: .whitespaces)
      if uri.isEmpty { continue }
      guard isPlainURI(uri) else {
        return .failure(
          .error(
            "state.hosts", "line \(n + 1) of \(file) is not a libvirt URI: '\(uri.prefix(80))'",
            at: SourceRange(file: file, start: SourcePosition(line: n + 1, column: 1)), subject: file,
            hint: "each line holds one URI such as qemu:///system or qemu+ssh://host/system"))
      }
      hosts.insert(uri)
    }
    return .success(hosts)
  }

  /// Replaces the file's content with `hosts` (atomically: a killed write leaves the old file).
  public static func write(_ hosts: Set<String>, stateDirectory: String) throws(Diagnostic) {
    let file = path(in: stateDirectory)
    let text = "# Hosts where this project has had nodes; Drover reads them even when no pool names them.\n"
      + hosts.sorted().map { $0 + "\n" }.joined()
    do {
      try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
      try Data(text.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
    } catch {
      throw Diagnostic.error(
        "state.hosts", "cannot write \(file): \((error as NSError).localizedFailureReason ?? error.localizedDescription)", subject: file,
        hint: "Drover remembers there where this project has nodes; make .drover/ writable")
    }
  }

  /// A URI as Drover would write one: a scheme, `://`, no whitespace or control characters, bounded.
  static func isPlainURI(_ s: String) -> Bool {
    guard s.count <= 1024, let sep = s.range(of: "://"), !s[..<sep.lowerBound].isEmpty else { return false }
    let scheme = s[..<sep.lowerBound]
    guard scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") }) else { return false }
    return s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7f }
  }
}
