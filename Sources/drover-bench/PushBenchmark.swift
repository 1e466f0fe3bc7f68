import DroverBake
import DroverBasics
import DroverLibvirt
import DroverModel
import Foundation
import Libvirt

/// `push`: an image pushed to the second libvirt host and verified (hashed while sent, then
/// downloaded and hashed) against the C floor — the same bytes uploaded and downloaded through
/// raw libvirt streams with nothing else — measured in the same run.
/// `DROVER_BENCH_PUSH_MIB` sets the image size (default 1024); `DROVER_BENCH_PUSH_URI` the host.
enum PushBenchmark {
  static func run(runs: Int) throws -> [String] {
    let env = ProcessInfo.processInfo.environment
    let uri = env["DROVER_BENCH_PUSH_URI"] ?? "qemu+ssh://drover-second-host/session"
    let mib = Int(env["DROVER_BENCH_PUSH_MIB"] ?? "") ?? 1024
    let id = "\(getpid())"
    let pool = "drover-bench-push-\(id)", directory = "/var/lib/drover-h2/bench-push-\(id)"
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("drover-bench-push-\(id).img").path
    defer { try? FileManager.default.removeItem(atPath: file) }
    try FleetBenchmark.check(runProcess("/bin/sh", ["-c", "head -c \(mib)M /dev/urandom > '\(file)'"]), "making the image")
    let sha = try FileDigestCache.sha256(ofFile: file)
    let backend = try LibvirtHostBackend.connect(uri, keyring: Keyring(project: "bench", key: nil), timeout: 60, callTimeout: 600)
    try backend.ensureImagePool(name: pool, directory: directory)
    defer {
      if let p = try? backend.connection.storagePool(named: pool) {
        for name in (try? p.volumeNames()) ?? [] { try? p.volume(named: name)?.delete() }
        try? p.stop()
        try? p.undefine()
      }
    }
    let size = UInt64(mib) << 20
    let rounds = max(1, min(runs, 3))
    // The floor: one raw upload and one raw download of the same bytes, nothing else.
    let raw = try Stopwatch.median(runs: rounds) {
      guard let p = try backend.connection.storagePool(named: pool) else { return }
      if let old = try p.volume(named: "raw") { try old.delete() }
      let v = try p.createVolume(xml: "<volume><name>raw</name><capacity unit='bytes'>\(size)</capacity><target><format type='raw'/></target></volume>")
      let fd = open(file, O_RDONLY)
      defer { close(fd) }
      try v.upload(length: size) { Glibc.read(fd, $0.baseAddress, $0.count) }
      try v.download { _ in }
    }
    // Drover: hashed while sent, read back and hashed, marked verified.
    let drover = try Stopwatch.median(runs: rounds) {
      let images = NodeImages(
        catalogue: ImageCatalogue(directory: "/nonexistent"), poolName: pool, consoleDirectory: "/tmp", hostDirectories: [uri: directory])
      for name in ["pushed.img", PoolVolumeNames.verifiedMark(of: "pushed.img")] { try backend.deleteVolume(pool: pool, name: name) }
      _ = try images.pushed(file, as: "pushed.img", sha256: sha, to: backend)
    }
    // A second push of a verified copy (what `drover images push` does then): lookups only.
    let again = try Stopwatch.median(runs: 5) {
      _ = try backend.volume(pool: pool, name: "pushed.img")
      _ = try backend.volume(pool: pool, name: PoolVolumeNames.verifiedMark(of: "pushed.img"))
    }
    let mbps = Double(mib) * 2 / raw
    return [
      "image: \(mib) MiB of random bytes to \(uri), median of \(rounds)",
      "  raw libvirt streams (upload + download, no hashing): \(Stopwatch.format(raw)) (\(String(format: "%.0f", mbps)) MiB/s both ways)",
      "  drover push + verify (hash while sending, download + hash): \(Stopwatch.format(drover))  ratio \(String(format: "%.2f", drover / raw))× (target ≤ 1.10×)",
      "  second push of a verified copy (two lookups): \(Stopwatch.format(again)) (target < 50 ms)",
    ]
  }
}
