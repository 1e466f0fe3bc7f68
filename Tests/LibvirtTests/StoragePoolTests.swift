import Foundation
import Libvirt
import Testing

/// Storage pools and volumes on the test driver (its built-in pool is `default-pool`).
@Suite struct StoragePoolTests {
  @Test func volumeLifecycleWithBackingStore() throws {
    let c = try Connection.open("test:///default")
    let pool = try #require(try c.storagePool(named: "default-pool"))
    #expect(try pool.isActive())
    let name = "drover-vol-\(getpid()).qcow2"
    let volume = try pool.createVolume(xml: """
      <volume><name>\(name)</name><capacity unit='MiB'>64</capacity>
      <target><format type='qcow2'/></target>
      <backingStore><path>/images/base.qcow2</path><format type='qcow2'/></backingStore></volume>
      """)
    #expect(volume.name == name)
    #expect(try volume.path().hasSuffix(name))
    #expect(try pool.volumeNames().contains(name))
    #expect(try pool.volume(named: name) != nil)
    try volume.delete()
    #expect(try pool.volume(named: name) == nil)
    #expect(try c.storagePool(named: "no-such-pool") == nil)
  }
}
