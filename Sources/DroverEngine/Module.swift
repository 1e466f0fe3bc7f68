// Module DroverEngine
// Owns: the jobs commands run (ApplyJob, HealJob) over a RunContext value; running plans: executor, apply engine, rollout runner, health, drains, hooks, journal, locks, observation.
// Must not: decide what to change (the plan and rollout modules do), or import libvirt.
