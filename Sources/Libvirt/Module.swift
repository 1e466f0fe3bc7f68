// Module Libvirt
// Owns: thin Swift over libvirt's C API: connections, domains, storage pools, errors as values.
// Must not: know anything about Drover (pools, nodes, ownership).
