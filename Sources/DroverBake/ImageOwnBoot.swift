import DroverBasics
import DroverModel
import Foundation

/// What a distro image brings for itself, read from its finished disk without mounting it
/// (`debugfs` of e2fsprogs): its kernel and initrd from `/boot`, and its installed packages.
///
/// Why from the disk and not the package layer: the recipe's commands run after the layer and
/// may install or remove a kernel or packages; the manifest must describe the image as shipped.
/// The disk's contents came from a recipe (a pull request), so every name read from it is
/// checked before it reaches a command line or a path.
///
/// Owns: choosing the boot files, parsing dpkg's status. Must not: write outside the staging
/// folder it is given.
public enum ImageOwnBoot {
  static let debugfs = "/usr/sbin/debugfs"

  /// Entries of `debugfs -R "ls -p /boot"`: `/inode/mode/uid/gid/name/size/` per line.
  public static func listing(_ text: String) -> [(name: String, regular: Bool)] {
    text.split(separator: "\n").compactMap { line in
      let parts = line.split(separator: "/", omittingEmptySubsequences: false)
      guard parts.count >= 7, let mode = Int(parts[2], radix: 8) else { return nil }
      return (String(parts[5]), mode & 0o170000 == 0o100000)
    }
  }

  /// The newest kernel release in `/boot` that has both `vmlinuz-<release>` and
  /// `initrd.img-<release>` as regular files, by Debian-style version order; nil when none.
  public static func choose(_ entries: [(name: String, regular: Bool)]) -> String? {
    let files = Set(entries.filter(\.regular).map(\.name))
    let releases = files.compactMap { name -> String? in
      guard name.hasPrefix("vmlinuz-") else { return nil }
      let release = String(name.dropFirst("vmlinuz-".count))
      guard isRelease(release), files.contains("initrd.img-" + release) else { return nil }
      return release
    }
    return releases.max(by: { versionLess($0, $1) })
  }

  /// A kernel release is a plain name (`6.1.0-28-amd64`): it goes into a debugfs command.
  public static func isRelease(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 64
      && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._+-".unicodeScalars.contains($0) }
  }

  /// Compares runs of digits as numbers and everything else as text: `6.1.0-9` < `6.1.0-28`.
  static func versionLess(_ a: String, _ b: String) -> Bool {
    func parts(_ s: String) -> [Either] {
      var result: [Either] = [], digits = "", other = ""
      for c in s {
        if c.isASCII && c.isNumber {
          if !other.isEmpty { result.append(.text(other)); other = "" }
          digits.append(c)
        } else {
          if !digits.isEmpty { result.append(.number(Int(digits) ?? 0)); digits = "" }
          other.append(c)
        }
      }
      if !digits.isEmpty { result.append(.number(Int(digits) ?? 0)) }
      if !other.isEmpty { result.append(.text(other)) }
      return result
    }
    let x = parts(a), y = parts(b)
    for (p, q) in zip(x, y) where p != q {
      switch (p, q) {
      case (.number(let m), .number(let n)): return m < n
      case (.text(let m), .text(let n)): return m < n
      case (.number, .text): return false
      case (.text, .number): return true
      }
    }
    return x.count < y.count
  }

  enum Either: Equatable {
    case number(Int)
    case text(String)
  }

  /// The installed packages of a dpkg status file, sorted by name.
  public static func installedPackages(_ status: String) -> [ImageManifest.InstalledPackage] {
    var result: [ImageManifest.InstalledPackage] = []
    for paragraph in status.components(separatedBy: "\n\n") {
      var fields: [String: String] = [:]
      for line in paragraph.split(separator: "\n") where !line.hasPrefix(" ") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      }
      guard let name = fields["Package"], let version = fields["Version"], fields["Status"]?.hasSuffix(" installed") == true else { continue }
      result.append(.init(name: name + (fields["Architecture"].map { $0 == "all" || $0 == "amd64" ? "" : ":" + $0 } ?? ""), version: version))
    }
    return result.sorted { $0.name < $1.name }
  }

  /// Reads the image's boot files and packages from `disk` (a raw ext4 file system) into `stage`.
  /// - Throws: `bake.kernel` when `/boot` holds no kernel with its initrd.
  static func read(disk: String, stage: String, recipe: ImageRecipe, runner: ProcessRunner) throws
    -> (kernel: String, initrd: String, release: String, packages: [ImageManifest.InstalledPackage])
  {
    let ls = try runner.run([debugfs, "-R", "ls -p /boot", disk], timeout: 60).stdout
    guard let release = choose(listing(ls)) else {
      throw Diagnostic.error(
        "bake.kernel", "image \(recipe.reference) has no kernel in /boot (a vmlinuz-<release> with its initrd.img-<release>)",
        subject: "image \(recipe.reference)", hint: "add a kernel to base.packages, such as linux-image-amd64 (it brings initramfs-tools)")
    }
    let kernel = stage + "/vmlinuz", initrd = stage + "/initrd.img"
    try runner.run([debugfs, "-R", "dump /boot/vmlinuz-\(release) \(kernel)", disk], timeout: 120)
    try runner.run([debugfs, "-R", "dump /boot/initrd.img-\(release) \(initrd)", disk], timeout: 120)
    for file in [kernel, initrd] where !SafeFiles.isNonEmptyFile(file) {
      throw Diagnostic.error("bake.kernel", "could not read \(file.hasSuffix("vmlinuz") ? "vmlinuz" : "initrd.img")-\(release) from the image's /boot", subject: "image \(recipe.reference)")
    }
    let status = (try? runner.run([debugfs, "-R", "cat /var/lib/dpkg/status", disk], timeout: 120).stdout) ?? ""
    return (kernel, initrd, release, installedPackages(status))
  }
}
