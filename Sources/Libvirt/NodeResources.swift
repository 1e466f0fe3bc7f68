internal import CLibvirt
import Foundation

/// What a host has, as libvirt reports it: the inputs of capacity-aware placement.
public struct NodeInfo: Sendable, Hashable {
  /// Active CPUs.
  public var cpus: Int
  /// Memory in bytes (libvirt's figure: on a NUMA host, what its cells report).
  public var memoryBytes: UInt64
}

/// The host's memory from its kernel (`/proc/meminfo` on Linux), in bytes.
public struct NodeMemory: Sendable, Hashable {
  public var totalBytes: UInt64
  /// Free plus buffers and page cache: what guests can get without swapping.
  public var availableBytes: UInt64
}

/// A storage pool's state and space.
public struct StoragePoolInfo: Sendable, Hashable {
  public var isActive: Bool
  public var capacityBytes: UInt64
  public var availableBytes: UInt64
}

extension Connection {
  /// CPUs and memory of the host. The corresponding C function is `virNodeGetInfo`.
  public func nodeInfo() throws(LibvirtError) -> NodeInfo {
    var info = virNodeInfo()
    guard virNodeGetInfo(pointer, &info) == 0 else { throw LibvirtError.last(fallback: "reading the node info of \(uri)") }
    return NodeInfo(cpus: Int(info.cpus), memoryBytes: UInt64(info.memory) * 1024)
  }

  /// The whole host's memory, all cells together, in one round trip (the parameter array is
  /// given its size up front, so libvirt is not asked for the count first: Linux hosts report
  /// exactly four, total, free, buffers and cached, and refuse any other count).
  /// The corresponding C function is `virNodeGetMemoryStats` with `VIR_NODE_MEMORY_STATS_ALL_CELLS`.
  public func nodeMemory() throws(LibvirtError) -> NodeMemory {
    var count: Int32 = 4
    var params = [virNodeMemoryStats](repeating: virNodeMemoryStats(), count: Int(count))
    guard virNodeGetMemoryStats(pointer, Int32(VIR_NODE_MEMORY_STATS_ALL_CELLS.rawValue), &params, &count, 0) == 0 else {
      throw LibvirtError.last(fallback: "reading the memory of \(uri)")
    }
    var values: [String: UInt64] = [:]
    for p in params.prefix(Int(max(0, min(count, 4)))) {
      let field = withUnsafeBytes(of: p.field) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
      values[field] = p.value
    }
    guard let total = values[VIR_NODE_MEMORY_STATS_TOTAL] else {
      throw LibvirtError(code: .internalError, message: "the memory of \(uri) was read without its total")
    }
    let available = (values[VIR_NODE_MEMORY_STATS_FREE] ?? 0) + (values[VIR_NODE_MEMORY_STATS_BUFFERS] ?? 0) + (values[VIR_NODE_MEMORY_STATS_CACHED] ?? 0)
    return NodeMemory(totalBytes: total * 1024, availableBytes: min(total, available) * 1024)
  }
}

extension StoragePool {
  /// State, capacity and free space in one call. The corresponding C function is `virStoragePoolGetInfo`.
  public func info() throws(LibvirtError) -> StoragePoolInfo {
    var info = virStoragePoolInfo()
    try check(virStoragePoolGetInfo(pointer, &info), "reading the info of pool \(name)")
    let running = info.state == UInt32(VIR_STORAGE_POOL_RUNNING.rawValue) || info.state == UInt32(VIR_STORAGE_POOL_DEGRADED.rawValue)
    return StoragePoolInfo(isActive: running, capacityBytes: info.capacity, availableBytes: info.available)
  }
}
