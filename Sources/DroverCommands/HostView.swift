import DroverModel
import DroverPlan

/// Renders `drover host list`: one row per host, from the ledger plan uses.
enum HostView {
  static func rows(world: ObservedWorld, ledger: CapacityLedger, names: [String: String], project: String) -> [[String: Any]] {
    var rows: [[String: Any]] = []
    for uri in Set(world.hosts.keys).union(world.unreachable.keys).sorted() {
      var row: [String: Any] = ["uri": uri, "name": names[uri] ?? ""]
      guard let host = world.hosts[uri], let room = ledger.rooms[uri] else {
        row["state"] = "unreachable"
        row["reason"] = world.unreachable[uri] ?? ""
        rows.append(row)
        continue
      }
      row["state"] = room.cordoned ? "cordoned" : "ready"
      row["nodes"] = host.domains.filter { $0.ownership?.project == project }.count
      row["vcpu_given"] = room.committed.vcpu
      row["memory_given_bytes"] = room.committed.memory
      if let c = room.capacity {
        row["cpus"] = c.cpus
        row["memory_bytes"] = c.memoryBytes
        row["vcpu_allowed"] = Int((Double(c.cpus) * room.limits.vcpuRatio).rounded(.down))
        row["memory_allowed_bytes"] = Int((Double(c.memoryBytes) * room.limits.memoryRatio).rounded(.down))
        if let a = c.availableMemoryBytes { row["memory_available_bytes"] = a }
        if let f = c.poolFreeBytes { row["pool_free_bytes"] = f }
        row["enforced"] = room.enforced
      }
      rows.append(row)
    }
    return rows
  }

  static func table(_ rows: [[String: Any]]) -> String {
    func bytes(_ v: Any?) -> String { (v as? Int).map(HostRoomText.bytes) ?? (v as? UInt64).map { HostRoomText.bytes(Int($0)) } ?? "-" }
    var lines = [["HOST", "URI", "STATE", "CPUS", "VCPU GIVEN/ALLOWED", "MEMORY GIVEN/ALLOWED", "AVAILABLE", "POOL FREE", "NODES"]]
    for r in rows {
      let state = (r["state"] as? String ?? "") + ((r["enforced"] as? Bool) == false ? " (test driver: not enforced)" : "")
      lines.append([
        (r["name"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? "-", r["uri"] as? String ?? "", state,
        (r["cpus"] as? Int).map(String.init) ?? "-",
        "\(r["vcpu_given"] as? Int ?? 0)/\((r["vcpu_allowed"] as? Int).map(String.init) ?? "-")",
        "\(bytes(r["memory_given_bytes"]))/\(bytes(r["memory_allowed_bytes"]))", bytes(r["memory_available_bytes"]), bytes(r["pool_free_bytes"]),
        (r["nodes"] as? Int).map(String.init) ?? "-",
      ])
    }
    let widths = (0..<lines[0].count).map { i in lines.map { $0[i].count }.max() ?? 0 }
    return lines.map { row in row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
      .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
  }
}
