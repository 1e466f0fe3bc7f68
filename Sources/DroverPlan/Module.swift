// Module DroverPlan
// Owns: pure planning: plan, node diffs (shared with drift), drift, rollout previews, target selectors, fingerprints.
// Must not: do I/O; it reads only its arguments.
