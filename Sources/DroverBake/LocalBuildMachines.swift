import DroverBasics
import DroverModel
import Foundation
import Synchronization

/// Build machines run as QEMU processes Drover starts itself, for bakes on the local host.
///
/// Why not a libvirt domain: a build machine lives for one bake, has no network and is never
/// managed afterwards, and libvirt's lifecycle around it — ~0.45 s to start (QEMU runs after
/// 0.14 s; QMP set-up takes the rest) and ~0.2 s to stop — made a cold bake 1.03–1.07× Packer's
/// time, which execs QEMU directly (as mkosi does). Node VMs stay libvirt domains.
///
/// Each machine has a pid file `<directory>/<name>.pid`; a machine left by a killed bake is found
/// through it (checked against the process's own command line) and stopped by the next bake.
/// QEMU runs under its seccomp sandbox, with no network device. `DROVER_BUILD_MACHINES=libvirt`
/// makes bakes use libvirt domains again.
public final class LocalBuildMachines: BuildMachineHost, @unchecked Sendable {
  public static let qemu = "/usr/bin/qemu-system-x86_64"
  /// The image folder; machines keep their pid files and logs in its `.machines` folder, which
  /// is opened without following links (a planted `.machines` link is refused, never followed).
  let root: String
  var directory: String { root + "/.machines" }
  static let folder = ".machines"
  /// Children started by this process, by name: waited for directly (no zombie, no delay).
  private let children = Mutex<[String: pid_t]>([:])

  public init(imageDirectory: String) {
    self.root = imageDirectory
  }

  /// Local bakes on this machine's system QEMU; anything else keeps libvirt build machines.
  public static func canRun(for uri: String) -> Bool {
    (uri == "qemu:///system" || uri == "qemu:///session") && FileManager.default.isExecutableFile(atPath: qemu)
      && ProcessInfo.processInfo.environment["DROVER_BUILD_MACHINES"] != "libvirt"
  }

  func pidFile(_ name: String) -> String { "\(directory)/\(name).pid" }

  public func bootBuildMachine(_ m: BuildMachine) throws {
    try SafeFiles.directory(Self.folder, in: root)
    var argv = [
      Self.qemu, "-name", m.name, "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "\(m.memoryMiB)", "-smp", "1",
      "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-kernel", m.kernel, "-initrd", m.initrd,
      "-append", m.cmdline, "-chardev", "file,id=console,path=\(m.consoleLog)", "-serial", "chardev:console",
      "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-pidfile", pidFile(m.name),
    ]
    for disk in m.disks {
      argv += ["-drive", "file=\(disk.path.replacingOccurrences(of: ",", with: ",,")),format=\(disk.format),if=virtio,cache=unsafe"]
    }
    let log = "\(directory)/\(m.name).log"
    let pid: pid_t
    switch ChildProcess.spawn(argv, ChildProcess.Options(output: log, searchPath: false)) {
    case .success(let started): pid = started
    case .failure(let error):
      throw Diagnostic.error("bake.boot", "cannot start \(Self.qemu): \(String(cString: strerror(error.code.rawValue)))", subject: m.name)
    }
    children.withLock { $0[m.name] = pid }
    // QEMU writes its pid file once it has opened everything; a start-up failure ends it first.
    let deadline = Date().addingTimeInterval(10)
    while !FileManager.default.fileExists(atPath: pidFile(m.name)) {
      var status: Int32 = 0
      if waitpid(pid, &status, WNOHANG) == pid {
        children.withLock { _ = $0.removeValue(forKey: m.name) }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw Diagnostic.error(
          "bake.boot", "the build machine could not start: \(output.trimmingCharacters(in: .whitespacesAndNewlines))", subject: m.name)
      }
      if Date() > deadline { break }
      usleep(5_000)
    }
  }

  public func removeBuildMachine(name: String) throws {
    if let pid = children.withLock({ $0.removeValue(forKey: name) }) {
      stopChild(pid)
    } else if let pid = runningPid(name) {
      stopOrphan(pid)
    }
    try? SafeFiles.remove("\(name).pid", inFolder: Self.folder, of: root)
    try? SafeFiles.remove("\(name).log", inFolder: Self.folder, of: root)
  }

  public func buildMachineNames() throws -> [String] {
    let entries = try SafeFiles.entries(of: Self.folder, in: root)
    var names: [String] = []
    for entry in entries where entry.hasSuffix(".pid") {
      let name = String(entry.dropLast(4))
      if children.withLock({ $0[name] != nil }) || runningPid(name) != nil {
        names.append(name)
      } else {
        try? SafeFiles.remove(entry, inFolder: Self.folder, of: root)  // it ended: nothing to stop
      }
    }
    return names.sorted()
  }

  /// The pid in `name`'s pid file, if that process is alive and is this build machine's QEMU.
  func runningPid(_ name: String) -> pid_t? {
    guard let text = try? String(contentsOfFile: pidFile(name), encoding: .utf8),
      let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
      let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
    else { return nil }
    let args = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    guard args.first == Self.qemu, let i = args.firstIndex(of: "-name"), i + 1 < args.count, args[i + 1] == name,
      !isZombie(pid)
    else { return nil }
    return pid
  }

  func isZombie(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(close, offsetBy: 2)...].first == "Z"
  }

  /// Our own child: SIGTERM unless it already ended, then reap it (SIGKILL after 5 s).
  func stopChild(_ pid: pid_t) {
    var status: Int32 = 0
    if waitpid(pid, &status, WNOHANG) == pid { return }
    kill(pid, SIGTERM)
    let deadline = Date().addingTimeInterval(5)
    while waitpid(pid, &status, WNOHANG) == 0 {
      if Date() > deadline {
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return
      }
      usleep(5_000)
    }
  }

  /// A leftover of another (killed) Drover process: SIGTERM, then SIGKILL after 5 s.
  func stopOrphan(_ pid: pid_t) {
    kill(pid, SIGTERM)
    var deadline = Date().addingTimeInterval(5)
    var killed = false
    while kill(pid, 0) == 0 && !isZombie(pid) {
      if Date() > deadline {
        if killed { return }
        kill(pid, SIGKILL)
        killed = true
        deadline = Date().addingTimeInterval(2)
      }
      usleep(10_000)
    }
  }
}
