// Module DroverEngine
// Owns: running plans: executor, apply engine, rollout runner, health, drains, hooks, journal, locks, observation.
// Must not: decide what to change (the plan and rollout modules do), or import libvirt.
