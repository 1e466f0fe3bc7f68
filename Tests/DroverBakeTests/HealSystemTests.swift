import DroverLibvirt
import DroverModel
import Foundation
import Libvirt
import Testing

/// #20 on real VMs (`qemu:///system`, busybox under TCG), through the built binary: a node
/// `virsh destroy`ed is replaced by `heal`; a node whose guest stops its console heartbeat (the
/// image's init stops when its seed tells it to) is replaced; 3 of 3 broken with
/// `max_unhealthy: 1` replaces nothing and exits 2; a heal killed with `kill -9` mid-replacement
/// converges on the rerun, counted once, with no orphan overlay.
extension BakeSystemTests {
  final class HealProject: VMTestProject {
    init() throws {
      try super.init("heal")
      // Beats every second on the console; a node its seed names (by instance id: name and
      // generation) stops after the count given there — "told to" through the pool's user_data,
      // read raw from the seed disk (no mount, no cloud-init in busybox).
      try """
        #!/bin/busybox sh
        /bin/busybox --install -s /bin
        id=$(grep -o 'instance-id: [a-z0-9-]*' /dev/vdb 2>/dev/null | head -n 1 | cut -d' ' -f2)
        stop=$(grep -o "stop-heartbeat-after: $id [0-9]*" /dev/vdb 2>/dev/null | head -n 1 | cut -d' ' -f3)
        # Each boot is counted on the node's own disk: a node brought back on its disk counts on,
        # a replacement starts at 1.
        echo boot >> /boots; sync
        # A clean shutdown from the host (virsh shutdown: the ACPI power button) powers off.
        mkdir -p /etc/acpi/PWRF
        printf '#!/bin/sh\necho "DROVER ACPI POWEROFF" > /dev/console\nsync\npoweroff -f\n' > /etc/acpi/PWRF/00000080
        chmod 0755 /etc/acpi/PWRF/00000080
        acpid -c /etc/acpi -l /dev/null
        echo "DROVER READY $id boot $(wc -l < /boots)"
        # Faults the seed asks for, once per disk: a guest reboot, a clean power-off.
        for fault in reboot poweroff; do
          after=$(grep -o "$fault-after: $id [0-9]*" /dev/vdb 2>/dev/null | head -n 1 | cut -d' ' -f3)
          if [ -n "$after" ] && [ ! -e /$fault-done ]; then (sleep "$after"; touch /$fault-done; sync; echo "DROVER $fault"; $fault -f) & fi
        done
        n=0
        while [ -z "$stop" ] || [ "$n" -lt "$stop" ]; do n=$((n + 1)); echo "DROVER HEARTBEAT $n"; sleep 1; done
        echo "DROVER HEARTBEAT STOPPED"
        exec sh -c 'while :; do sleep 3600; done'
        """.write(to: dir.appendingPathComponent("images/files/init"), atomically: true, encoding: .utf8)
      try """
        name: heal
        version: v1
        base: {rootfs: busybox}
        files: [{source: files/init, path: /init, mode: "0755"}]
        cmdline: console=ttyS0 panic=-1 quiet
        size: 32MiB

        """.write(to: dir.appendingPathComponent("images/heal.yaml"), atomically: true, encoding: .utf8)
    }

    func pool(maxUnhealthy: String = "1", inFlight: Int = 1, unhealthyAfter: String = "2s", grace: String = "15s", extra: String = "", faults: String = "# stop-heartbeat-after: hs-2-g1 6") throws {
      try """
        name: hs
        hosts: [qemu:///system]
        replicas: 3
        image: heal@v1
        resources: {memory: 160MiB}
        health: [{type: console, pattern: "DROVER READY", timeout: 60s, interval: 250ms, retries: 0}]
        heartbeat: {source: console, pattern: "DROVER HEARTBEAT [0-9]+", interval: 1s, missed: 3}
        remediation: {unhealthy_after: \(unhealthyAfter), max_unhealthy: \(maxUnhealthy), max_in_flight: \(inFlight), repair_grace: \(grace)\(extra)}
        upgrade: {health_timeout: 60s}
        cloud_init:
          user_data: |
            #cloud-config
            \(faults)

        """.write(to: dir.appendingPathComponent("pools/hs.yaml"), atomically: true, encoding: .utf8)
    }

    /// The heal ledger of the pool (what passes remember: beats, incidents and the rungs tried).
    var ledger: String { (try? String(contentsOfFile: "/var/lib/drover/state/\(project)/health/hs.json", encoding: .utf8)) ?? "" }

    /// The boots a node counted on its own disk, as its console shows the last one (libvirt
    /// truncates the console when the domain starts; a guest's own reboot keeps it).
    func boots(_ name: String) -> Int {
      let log = (try? String(contentsOfFile: "\(consoleDir)/\(name).log", encoding: .isoLatin1)) ?? ""
      // The serial console ends its lines with "\r\n" (one Character in Swift: split on any newline).
      let ready = log.split(whereSeparator: \.isNewline).last { $0.contains("DROVER READY") }
      return ready.flatMap { Int($0.split(whereSeparator: \.isWhitespace).last ?? "") } ?? 0
    }

    /// With more variables (`DROVER_CRASH_AT`).
    func run(_ args: [String], extra: [String: String]) throws -> (status: Int32, output: String) {
      try DroverProcess.run(binary, args, in: dir, environment: environment.mapValues { $0 }.merging(extra.mapValues { $0 }) { $1 })
    }

    func cleanUp(_ connection: Connection) {
      try? """
        name: hs
        hosts: [qemu:///system]
        replicas: 0
        image: heal@v1

        """.write(to: dir.appendingPathComponent("pools/hs.yaml"), atomically: true, encoding: .utf8)
      _ = try? run(["rollout", "abort", "hs"])
      _ = try? run(["apply", "--auto-approve"])
      removeAll(connection)
    }
  }

  /// Runs `heal` a second apart until `done` holds for the project's nodes or `passes` have
  /// run; returns the last status and every pass's output. The waits are the spec's own
  /// (silence, unhealthy_after), not the test's.
  func heal(_ p: HealProject, passes: Int = 30, until done: ([VMNode]) -> Bool) throws -> (status: Int32, output: String) {
    var status: Int32 = -1
    var output = ""
    for _ in 0..<passes {
      let run = try p.run(["heal"])
      status = run.status
      output += run.output
      if try done(vmNodes(p)) && status != 2 { break }
      Thread.sleep(forTimeInterval: 1)
    }
    return (status, output)
  }

  /// Heal passes until every node is healthy and no incident is open (each has been healthy for
  /// unhealthy_after since its last repair): the next fault starts a new incident.
  func settle(_ p: HealProject, passes: Int = 40) throws {
    for _ in 0..<passes {
      if try p.run(["heal"]).status == 0 && !p.ledger.contains("\"incident\"") { return }
      Thread.sleep(forTimeInterval: 1)
    }
    Issue.record("incidents still open: \(p.ledger)")
  }

  @Test func healReplacesDeadAndSilentNodesOnRealVMsAndShortCircuitsAWiderOutage() throws {
    let p = try HealProject()
    defer { p.cleanUp(backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    // unhealthy_after 15s: longer than the few seconds a reset hs-2 beats before it stops again,
    // so that stays one incident, which climbs to replace.
    try p.pool(unhealthyAfter: "15s")
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    #expect(try p.run(["heal"]).status == 0, "3 fresh, beating nodes")
    let first = try vmNodes(p)
    #expect(first.count == 3)

    // 1. The guest of hs-2 (generation 1) stops beating 6 s after each boot, as its seed tells
    // it: first reset on its own disk (its second boot), and since it stops again, replaced
    // once the reset's grace and unhealthy_after are over, its drain forced; the replacement beats on.
    let silent = try heal(p, passes: 90) { $0.first { $0.name == "hs-2" }?.generation == 2 }
    #expect(silent.status == 0 && silent.output.contains("no heartbeat (console)") && silent.output.contains("drain forced"), "\(silent.output)")
    #expect(silent.output.contains("reset hs-2: done (same domain, same disk)"), "the gentler rung first: \(silent.output)")
    #expect(silent.output.contains("replace (DISCARDS DISK)"), "the rung that deletes a disk is marked: \(silent.output)")
    let afterSilence = try vmNodes(p)
    #expect(afterSilence.first { $0.name == "hs-2" }?.generation == 2)
    #expect(afterSilence.first { $0.name == "hs-1" }?.uuid == first[0].uuid && afterSilence.first { $0.name == "hs-3" }?.uuid == first[2].uuid, "the healthy nodes are untouched")
    try expectNoOrphan(p, "after a silent node's heal")
    try settle(p)

    // 2. virsh destroy: started again on its own disk (its second boot), nothing replaced.
    try backend.connection.domain(named: "hs-1")?.destroy()
    let dead = try heal(p) { $0.first { $0.name == "hs-1" }?.id != nil }
    #expect(dead.status == 0 && dead.output.contains("start hs-1: done (same domain, same disk)"), "\(dead.output)")
    let afterDeath = try vmNodes(p)
    #expect(afterDeath.count == 3 && afterDeath.first { $0.name == "hs-1" }?.uuid == first[0].uuid && afterDeath.first { $0.name == "hs-1" }?.disk == first[0].disk)
    #expect(afterDeath.first { $0.name == "hs-2" }?.uuid == afterSilence.first { $0.name == "hs-2" }?.uuid, "the healed hs-2 keeps beating")
    try expectNoOrphan(p, "after a dead node's start")
    try settle(p)

    // 3. All three destroyed, max_unhealthy 1 (a wider outage): each is started on its own disk
    // all the same — starting never makes a fleet worse — and none is replaced.
    for n in ["hs-1", "hs-2", "hs-3"] { try backend.connection.domain(named: n)?.destroy() }
    let outage = try p.run(["heal"])
    #expect(outage.status == 0 && outage.output.contains("wider outage, nothing is reset or replaced") && outage.output.components(separatedBy: ": done (same domain, same disk)").count == 4, "\(outage.output)")
    #expect(try vmNodes(p).map(\.uuid) == afterDeath.map(\.uuid) && (try vmNodes(p)).allSatisfy { $0.id != nil })
    try settle(p)

    // 4. A pool that only replaces (actions: [replace]), max_in_flight 3, hs-3 destroyed, killed
    // with kill -9 after the replacement was created: the rerun resumes that heal and converges,
    // one domain per index.
    try p.pool(maxUnhealthy: "100%", inFlight: 3, unhealthyAfter: "15s", extra: ", actions: [replace]")
    try backend.connection.domain(named: "hs-3")?.destroy()
    // One pass sees it down; dry runs until the replacement is due (after the grace of the
    // start that step 3 ran on it, plus unhealthy_after).
    #expect(try p.run(["heal"]).status == 2)
    for _ in 0..<60 where !(try p.run(["heal", "--dry-run"]).output.contains("would replace (DISCARDS DISK)")) { Thread.sleep(forTimeInterval: 1) }
    let killed = try p.run(["heal"], extra: ["DROVER_CRASH_AT": "step-done:create"])
    #expect(killed.status != 0 && killed.status != 2, "killed: \(killed.output)")
    let rerun = try heal(p) { nodes in nodes.count == 3 && nodes.allSatisfy { $0.id != nil } }
    #expect(rerun.status == 0, "\(rerun.output)")
    let end = try vmNodes(p)
    #expect(end.map(\.name) == ["hs-1", "hs-2", "hs-3"], "one domain per index")
    #expect(end.allSatisfy { $0.id != nil }, "every node running")
    try expectNoOrphan(p, "after the resumed heal")
    // 5. An agent heartbeat on nodes whose image runs no guest agent (busybox; the seeded
    // domains have the agent's channel): healthy through its grace, then unhealthy with
    // libvirt's reason; max_unhealthy 0 replaces nothing.
    let yaml = p.dir.appendingPathComponent("pools/hs.yaml")
    let spec = try String(contentsOf: yaml, encoding: .utf8)
    try spec.replacingOccurrences(of: "heartbeat: {source: console, pattern: \"DROVER HEARTBEAT [0-9]+\", interval: 1s, missed: 3}", with: "heartbeat: {source: agent, interval: 1s, missed: 1}")
      .replacingOccurrences(of: "max_unhealthy: 100%", with: "max_unhealthy: 0").replacingOccurrences(of: ", actions: [replace]", with: "")
      .write(to: yaml, atomically: true, encoding: .utf8)
    #expect(try p.run(["heal"]).status == 0, "the agent's grace starts now")
    Thread.sleep(forTimeInterval: 1.5)
    let silentAgent = try p.run(["heal"])
    #expect(silentAgent.status == 2 && silentAgent.output.contains("no heartbeat (agent)") && silentAgent.output.contains("short-circuit"), "\(silentAgent.output)")
    #expect(try vmNodes(p).map(\.uuid) == end.map(\.uuid))

    let history = try p.run(["rollout", "history", "--json", "hs"])
    #expect(history.output.components(separatedBy: "\"kind\":\"heal\"").count - 1 == 2, "two heals (replacements) in the history: \(history.output)")
  }

  /// #36 on real VMs: a paused node is resumed, a guest reboot is survived, a node that powered
  /// itself off is started on its own disk, so is one shut down cleanly from the host (`virsh
  /// shutdown`), and a host whose nodes all went down (a host
  /// reboot: every node shut off) gets every node back on its own disk — none replaced. The
  /// boots each node counted on its disk show which disk it runs on.
  @Test func healBringsNodesBackOnTheirOwnDisksBeforeReplacingAny() throws {
    let p = try HealProject()
    defer { p.cleanUp(backend.connection) }
    #expect(try p.run(["bake"]).status == 0)
    // repair_after 8s: a guest's own reboot (a few seconds without beats) is never repaired.
    // repair_grace 45s: three nodes booting at once under TCG take a while to beat again.
    try p.pool(grace: "45s", extra: ", repair_after: 8s", faults: "# reboot-after: hs-2-g1 12\n    # poweroff-after: hs-3-g1 20")
    let created = try p.run(["apply", "--auto-approve"])
    #expect(created.status == 0, "\(created.output)")
    let first = try vmNodes(p)
    #expect(first.count == 3)

    // A paused node (virsh suspend): resumed, the same boot of the same disk.
    try backend.connection.domain(named: "hs-1")?.suspend()
    let paused = try heal(p, passes: 40) { _ in (try? self.backend.connection.domain(named: "hs-1")?.state()) == .running }
    #expect(paused.output.contains("resume hs-1: done (same domain, same disk)"), "\(paused.output)")
    #expect(p.boots("hs-1") == 1, "no second boot: \(p.boots("hs-1"))")

    // hs-2 reboots itself (on_reboot=restart): still running, its second boot on its disk.
    // hs-3 powers itself off: started on its own disk.
    var output = ""
    for _ in 0..<90 {
      let pass = try p.run(["heal"])
      output += pass.output
      if p.boots("hs-2") == 2 && p.boots("hs-3") == 2 && pass.status == 0 { break }
      Thread.sleep(forTimeInterval: 1)
    }
    #expect(p.boots("hs-2") == 2 && p.boots("hs-3") == 2, "hs-2 \(p.boots("hs-2")), hs-3 \(p.boots("hs-3")): \(output.suffix(3000))")
    #expect(!output.contains("reset hs-2") && !output.contains("DISCARDS DISK"), "a reboot is no death: \(output.suffix(3000))")
    #expect(output.contains("start hs-3: done (same domain, same disk)"), "\(output.suffix(3000))")
    #expect(try vmNodes(p).map(\.uuid) == first.map(\.uuid), "nothing replaced")

    try settle(p)
    // A clean shutdown from the host (`virsh shutdown`: ACPI, the guest's acpid powers off):
    // started on its own disk, its second boot.
    let consoleBefore = (try? String(contentsOfFile: "\(p.consoleDir)/hs-1.log", encoding: .isoLatin1)) ?? ""
    try backend.connection.domain(named: "hs-1")?.shutdown()
    var stopped = false
    for _ in 0..<60 where !stopped {
      Thread.sleep(forTimeInterval: 0.5)
      stopped = (try? backend.connection.domain(named: "hs-1")?.state()) == .shutoff
    }
    let afterShutdown = (try? String(contentsOfFile: "\(p.consoleDir)/hs-1.log", encoding: .isoLatin1)) ?? ""
    #expect(stopped && afterShutdown.contains("DROVER ACPI POWEROFF"), "virsh shutdown reached the guest: \(consoleBefore.suffix(300)) \(afterShutdown.suffix(500))")
    let shut = try heal(p, passes: 40) { _ in p.boots("hs-1") == 2 }
    #expect(shut.output.contains("start hs-1: done (same domain, same disk)") && !shut.output.contains("DISCARDS DISK"), "\(shut.output.suffix(3000))")
    let afterStart = try vmNodes(p).map(\.uuid)
    #expect(p.boots("hs-1") == 2 && afterStart == first.map(\.uuid), "started on its own disk, nothing replaced")

    try settle(p)
    // A host reboot: every node shut off at once (nothing autostarts them). A wider outage for
    // max_unhealthy and the host, yet each node is started on its own disk. (The real thing, a
    // libvirtd restarted with no autostart marker, is `aHostRebootBringsEveryNodeBackOnItsOwnDisk`.)
    for n in ["hs-1", "hs-2", "hs-3"] { try backend.connection.domain(named: n)?.destroy() }
    let back = try heal(p) { _ in p.boots("hs-1") == 3 && p.boots("hs-2") == 3 && p.boots("hs-3") == 3 }
    #expect(back.output.contains("host qemu:///system: OUTAGE") && back.output.contains("short-circuit"), "\(back.output.suffix(4000))")
    #expect(back.output.components(separatedBy: ": done (same domain, same disk)").count == 4, "each started once: \(back.output.suffix(4000))")
    #expect(back.status == 0 && p.boots("hs-1") == 3 && p.boots("hs-2") == 3 && p.boots("hs-3") == 3, "\(back.output.suffix(2000))")
    #expect(try vmNodes(p).map(\.uuid) == first.map(\.uuid) && (try vmNodes(p)).allSatisfy { $0.id != nil })
    try expectNoOrphan(p, "after every repair")
  }
}
