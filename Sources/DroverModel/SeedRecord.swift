/// What a node's record must say about the seed it is created with.
///
/// Why: a rollback re-creates a node from the record it had before the rollout, and a resumed
/// rollout from the journal's, while its seed is always built from the pool as it is now. The
/// record is what Drover trusts later (the address it connects to, the seed digest plan
/// compares), so it is aligned with the seed the node really gets. Pure.
public enum SeedRecord {
  public static func align(_ o: NodeOwnership, pool: PoolSpec) -> NodeOwnership {
    var aligned = o
    aligned.seed = CloudInitSeed.digest(pool)
    if let addressing = pool.staticAddresses {
      // Keep the record's address when it is one of the index's two; else the generation's.
      let own = addressing.addresses(index: o.index)
      if o.address == nil || (o.address != own?.0 && o.address != own?.1) { aligned.address = addressing.address(index: o.index, generation: o.generation) }
    } else {
      aligned.address = nil
    }
    return aligned
  }
}
