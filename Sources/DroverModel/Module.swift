// Module DroverModel
// Owns: plain values: pool specs, ownership records, observed worlds, overlay and pool names, the host/image ports.
// Must not: do I/O; every type is a value or a protocol.
