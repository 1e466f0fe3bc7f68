import DroverRollout

/// The port analysis gates query through (#43): one PromQL instant query, answered as a value —
/// an unreachable backend, a refused query or an answer that is not Prometheus's is `.error`,
/// never thrown, so the gate's contract decides what it means (a pause, never a pass).
public protocol MetricsQuerying: Sendable {
  /// The backend, for messages.
  var endpoint: String { get }
  /// Runs `promql` now; bounded by the adapter's own timeout.
  func query(_ promql: String) -> QueryAnswer
}
