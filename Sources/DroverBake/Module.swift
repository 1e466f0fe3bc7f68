// Module DroverBake
// Owns: golden images: bake, catalogue, verification, node overlays (prepare), gc, local build machines.
// Must not: plan or apply nodes; it only gives a node its disk.
