// Module DroverRollout
// Owns: pure rollout decisions: policy, schedule, next step, which domains a replacement acts on, rollback targets.
// Must not: do I/O or import the engine; the runner acts on what it returns.
