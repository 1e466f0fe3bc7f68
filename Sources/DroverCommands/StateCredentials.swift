import DroverBasics
import DroverModel
import DroverPostgres
import Foundation

/// How this machine reaches a project's state database (#40): the trust and the password come
/// from the machine — `DROVER_STATE_PASSWORD` or the state entry's `password_file`, its CA or
/// `insecure` — never from the project, whose files arrive in pull requests.
enum StateCredentials {
  /// The machine's entry for the server `url` names (nil: none, so verified TLS with no CA:
  /// refused when connecting), and problems with it.
  static func resolve(url: String, machine: MachineSettings, environment: [String: String]) -> (trust: PostgresTrust, password: String?, diagnostics: [Diagnostic]) {
    guard let target = try? PostgresURL(url) else { return (PostgresTrust(), environment["DROVER_STATE_PASSWORD"], []) }
    let entry = machine.stateServers[target.server]
    var diagnostics: [Diagnostic] = []
    let trust = PostgresTrust(caFile: entry?.ca, insecure: entry?.insecure ?? false)
    if trust.insecure {
      diagnostics.append(
        .warning(
          "state.insecure", "the state database \(target.display) is reached without TLS (insecure: true in \(machine.file ?? MachineSettings.defaultPath)); only SCRAM logins are answered",
          subject: "state", hint: "for anything but a loopback test server, give its CA instead: ca: /etc/drover/db-ca.pem"))
    }
    if let password = environment["DROVER_STATE_PASSWORD"] { return (trust, password, diagnostics) }
    guard let file = entry?.passwordFile else { return (trust, nil, diagnostics) }
    switch readPasswordFile(file) {
    case .success(let password): return (trust, password, diagnostics)
    case .failure(let problem):
      diagnostics.append(problem)
      return (trust, nil, diagnostics)
    }
  }

  /// The password in `path`: a regular file (no link followed) of root or Drover's user that
  /// nobody else can read; its first line.
  static func readPasswordFile(_ path: String) -> Result<String, Diagnostic> {
    func refuse(_ why: String) -> Result<String, Diagnostic> {
      .failure(.error("state.password-file", "refusing the state password file \(path): \(why)", subject: path, hint: "chown root \(path) && chmod 600 \(path)"))
    }
    var st = stat()
    guard lstat(path, &st) == 0 else { return refuse("it cannot be read (\(String(cString: strerror(errno))))") }
    guard (st.st_mode & S_IFMT) == S_IFREG else { return refuse("it is not a regular file (a symlink is never followed)") }
    guard st.st_uid == 0 || st.st_uid == geteuid() else { return refuse("it belongs to uid \(st.st_uid), neither root nor Drover's user") }
    guard st.st_mode & 0o077 == 0 else { return refuse("others can read or write it (mode \(String(st.st_mode & 0o777, radix: 8)))") }
    guard st.st_size <= 4096, let data = FileManager.default.contents(atPath: path) else { return refuse("it is larger than 4 KiB or unreadable") }
    let line = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
    guard !line.isEmpty else { return refuse("it is empty") }
    return .success(line)
  }
}
