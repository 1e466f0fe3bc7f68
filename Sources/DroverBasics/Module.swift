// Module DroverBasics
// Owns: diagnostics, digests, child processes (the one way to spawn and wait), fan-out, crash points, terminal-safe text.
// Must not: import any other Drover module or do libvirt/YAML work.
