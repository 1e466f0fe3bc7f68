// Module DroverLibvirt
// Owns: the host port over libvirt: observe, create/update/delete, overlays, image pools, build machines.
// Must not: decide anything: every destructive call re-checks ownership and UUID, and acts only as told.
