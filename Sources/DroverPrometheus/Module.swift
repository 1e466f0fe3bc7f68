// Module DroverPrometheus
// Owns: the Prometheus HTTP API client behind the engine's `MetricsQuerying` port (#43): one
//   instant query over HTTP(S), bounded by a deadline, its JSON answer read into `QueryAnswer`.
// Must not: judge a value (the gate's contract does, in DroverRollout) or throw for a backend that
//   is down (that is an answer: `.error`).
