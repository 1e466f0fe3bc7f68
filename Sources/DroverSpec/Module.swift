// Module DroverSpec
// Owns: reading and validating pools/*.yaml and images/*.yaml into model values, with located diagnostics.
// Must not: touch libvirt or the network; the only I/O is reading spec files.
