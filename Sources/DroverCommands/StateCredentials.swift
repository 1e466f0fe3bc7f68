import DroverBasics
import DroverEngine
import DroverModel
import DroverPostgres
import Foundation

/// How this machine reaches a project's state database (#40): the trust and the password come
/// from the machine — `DROVER_STATE_PASSWORD` or the state entry's `password_file`, its CA or
/// `insecure` — never from the project, whose files arrive in pull requests.
enum StateCredentials {
  /// How this machine trusts the server `url` names (its state entry; none: verified TLS with no
  /// CA, refused when connecting), and the warning an `insecure` entry earns on every run.
  static func trust(url: String, machine: MachineSettings) -> (trust: PostgresTrust, warnings: [Diagnostic]) {
    guard let target = try? PostgresURL(url) else { return (PostgresTrust(), []) }
    let entry = machine.stateServers[target.server]
    let trust = PostgresTrust(caFile: entry?.ca, insecure: entry?.insecure ?? false)
    guard trust.insecure else { return (trust, []) }
    return (
      trust,
      [
        .warning(
          "state.insecure", "the state database \(target.display) is reached without TLS (insecure: true in \(machine.file ?? MachineSettings.defaultPath)); only SCRAM logins are answered",
          subject: "state", hint: "for anything but a loopback test server, give its CA instead: ca: /etc/drover/db-ca.pem")
      ]
    )
  }

  /// The password for the server `url` names: `DROVER_STATE_PASSWORD`, else its state entry's
  /// `password_file`; nil when neither gives one.
  static func password(url: String, machine: MachineSettings, environment: [String: String]) throws(Diagnostic) -> String? {
    if let password = environment["DROVER_STATE_PASSWORD"] { return password }
    guard let target = try? PostgresURL(url), let file = machine.stateServers[target.server]?.passwordFile else { return nil }
    return try readPasswordFile(file)
  }

  /// The password in `path`: a regular file read through no link and bounded (`StateFile`), of
  /// root or Drover's user, that nobody else can read; its first line.
  static func readPasswordFile(_ path: String) throws(Diagnostic) -> String {
    func refuse(_ why: String) -> Diagnostic {
      .error("state.password-file", "refusing the state password file \(path): \(why)", subject: path, hint: "chown root \(path) && chmod 600 \(path)")
    }
    let contents: StateFile.Contents
    switch StateFile.read(path, maxBytes: 4096, tooLarge: "it is larger than 4 KiB") {
    case .success(nil): throw refuse("it does not exist")
    case .success(let read?): contents = read
    case .failure(let problem): throw refuse(problem.reason)
    }
    guard contents.owner == 0 || contents.owner == geteuid() else { throw refuse("it belongs to uid \(contents.owner), neither root nor Drover's user") }
    guard contents.mode & 0o077 == 0 else { throw refuse("others can read or write it (mode \(String(contents.mode & 0o777, radix: 8)))") }
    let line = String(decoding: contents.bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
    guard !line.isEmpty else { throw refuse("it is empty") }
    return line
  }
}
