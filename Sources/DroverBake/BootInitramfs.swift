import DroverBasics
import Foundation

/// Drover's small boot initramfs: busybox, the kernel's virtio/ext4 modules, and one init script.
///
/// Why: the Debian kernel has virtio and ext4 as modules, so something must load them before the
/// image's root filesystem can be mounted. The ACPI power button and evdev modules are loaded too,
/// so an image's init can honour a clean shutdown from the host (`virsh shutdown`: busybox
/// `acpid` with a `PWRF` action that powers off) instead of ignoring it. The same initramfs
/// serves nodes (switch_root into the image's /init) and build machines (`drover.build` on the
/// command line: run the recipe's commands in a chroot, print their exit status on the console,
/// power off).
public enum BootInitramfs {
  public static let busybox = "/bin/busybox"
  static let modules = ["virtio_pci", "virtio_blk", "ext4"]
  /// Loaded when the kernel has them as modules (a kernel with them built in, or without them,
  /// still boots: only `virsh shutdown` depends on them).
  static let optionalModules = ["button", "evdev"]

  public static let initScript = #"""
    #!/bin/busybox sh
    # Drover boot initramfs: load virtio/ext4, mount the image, then boot it or build it.
    B=/bin/busybox
    $B mount -t proc proc /proc
    $B mount -t sysfs sys /sys
    $B mount -t devtmpfs dev /dev
    for m in $($B cat /modules.order); do $B insmod $m 2>/dev/null; done
    i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
    if ! $B mount -t ext4 /dev/vda /newroot; then
      echo "DROVER BOOT FAILED: cannot mount /dev/vda"; $B poweroff -f
    fi
    if $B grep -q drover.build /proc/cmdline; then
      if [ -b /dev/vdb ]; then $B mkdir -p /newroot/.drover/payload; $B mount -t ext4 -o ro /dev/vdb /newroot/.drover/payload; fi
      $B mount --bind /proc /newroot/proc 2>/dev/null
      $B mount --bind /dev /newroot/dev 2>/dev/null
      script=/.drover/build.sh
      [ -f /newroot/.drover/payload/build.sh ] && script=/.drover/payload/build.sh
      echo "DROVER-BUILD-START"
      $B chroot /newroot /bin/sh $script 2>&1
      code=$?
      $B umount /newroot/proc /newroot/dev /newroot/.drover/payload 2>/dev/null
      $B rm -rf /newroot/.drover
      $B sync
      $B umount /newroot
      echo "DROVER-BUILD-EXIT=$code"
      $B poweroff -f
    fi
    $B mount --move /dev /newroot/dev
    $B umount /proc /sys
    exec $B switch_root /newroot /init

    """#

  /// The kernel release of a kernel file (`/vmlinuz` → `6.1.0-56-amd64`).
  public static func kernelRelease(_ kernel: String) -> String? {
    let name = (realPath(kernel) as NSString).lastPathComponent
    guard name.hasPrefix("vmlinuz-") else { return nil }
    return String(name.dropFirst("vmlinuz-".count))
  }

  /// Builds (or reuses) the initramfs for `kernel` in `directory`; returns its path.
  ///
  /// Content-addressed by kernel release, busybox, init script and modules, so it is built once per kernel.
  public static func ensure(kernel: String, in directory: String, digests: FileDigestCache, runner: ProcessRunner) throws -> String {
    guard let release = kernelRelease(kernel) else {
      throw Diagnostic.error(
        "bake.kernel", "cannot tell the kernel release of \(kernel)", subject: kernel,
        hint: "name a Debian kernel such as /vmlinuz or /boot/vmlinuz-<release>, or give an initrd")
    }
    let id = ContentDigest.of(release + (try digests.digest(of: busybox)) + initScript + (modules + optionalModules).joined(separator: ",")).short
    let path = "\(directory)/boot-\(release)-\(id).cpio.gz"
    if FileManager.default.fileExists(atPath: path) { return path }

    // The staging folder is a real folder of the image folder, never a planted link.
    let entry = "boot-\(id)-\(getpid())"
    let stage = try SafeFiles.directory(entry, in: SafeFiles.directory(".staging", in: directory), fresh: true)
    defer { try? SafeFiles.remove(entry, inFolder: ".staging", of: directory) }
    for dir in ["bin", "dev", "proc", "sys", "newroot", "lib/modules"] {
      try FileManager.default.createDirectory(atPath: "\(stage)/\(dir)", withIntermediateDirectories: true)
    }
    try FileManager.default.copyItem(atPath: busybox, toPath: "\(stage)/bin/busybox")
    var order: [String] = []
    for module in modules + optionalModules {
      let output: String
      do { output = try runner.run(["/usr/sbin/modprobe", "-S", release, "--show-depends", module]).stdout } catch {
        if optionalModules.contains(module) { continue }
        throw error
      }
      for line in output.split(separator: "\n") where line.hasPrefix("insmod ") {
        let file = String(line.split(separator: " ")[1])
        let target = "/lib/modules/" + (file as NSString).lastPathComponent
        if !order.contains(target) {
          order.append(target)
          try FileManager.default.copyItem(atPath: file, toPath: stage + target)
        }
      }
    }
    try (order.joined(separator: "\n") + "\n").write(toFile: "\(stage)/modules.order", atomically: true, encoding: .utf8)
    try initScript.replacingOccurrences(of: "\n    ", with: "\n").trimmingCharacters(in: .whitespaces)
      .write(toFile: "\(stage)/init", atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(stage)/init")
    let temp = path + ".tmp.\(getpid())"
    // Paths as arguments, never inside the script: a folder name is never shell code.
    try runner.run(["/bin/sh", "-c", "cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"", "sh", stage, temp], timeout: 120)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: temp)
    guard rename(temp, path) == 0 else { throw Diagnostic.error("bake.io", "cannot write \(path)") }
    return path
  }
}
