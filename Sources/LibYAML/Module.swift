// Module LibYAML
// Owns: thin Swift over libyaml: parsing to nodes with positions, hostile-input limits.
// Must not: know spec keys or produce diagnostics about them.
