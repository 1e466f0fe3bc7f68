import DroverRollout
import Foundation

/// What a rollout reports as it goes: a line for people (`message`) and typed fields for
/// machines (`apply --json`'s `rollout` events), so a pipeline never parses the sentence.
public struct RolloutEvent: Sendable, Hashable {
  public enum Kind: String, Sendable {
    /// A rollout began (`started`) or went on from its journal (`resumed`).
    case started, resumed
    /// A wave (the canary is wave 0) begins replacing `nodes`.
    case wave
    case soak
    /// One step of one node ended: `step`, `duration_seconds`, `outcome`.
    case step
    /// A node is replaced and healthy (`outcome` done), or failed (`outcome` failed, `message` why).
    case node
    case rollbackStarted = "rollback_started"
    case rolledBack = "rolled_back"
    case paused
    /// A step still waits (a health check): `node`, `step`, `duration_seconds` so far.
    case waiting
    /// A wave's analysis began, or ended (`outcome` passed, failed or paused) (#43).
    case analysis
    /// One analysis measurement: `measurement` (the gate, resolved query, values, verdict).
    case measurement
    /// A schedule gate held a batch (`outcome` waiting), or its wait ended (proceeded, paused,
    /// interrupted; `duration_seconds` waited), or the burn rate allowed a wave (passed) (#44).
    case deferral
  }

  public var kind: Kind
  public var rollout: String
  public var node: String? = nil
  public var step: String? = nil
  public var wave: Int? = nil
  public var nodes: [String]? = nil
  public var durationSeconds: Double? = nil
  /// done, failed, skipped, forced, rolled-back.
  public var outcome: String? = nil
  public var message: String
  /// What the step's hooks printed (bounded), shown indented under its line.
  public var output: String? = nil
  /// The measurement of a `measurement` event.
  public var measurement: GateMeasurement? = nil
  /// The deferral of a `deferral` event.
  public var deferral: Deferral? = nil

  public init(
    _ kind: Kind, rollout: String, node: String? = nil, step: String? = nil, wave: Int? = nil, nodes: [String]? = nil, durationSeconds: Double? = nil,
    outcome: String? = nil, message: String
  ) {
    self.kind = kind
    self.rollout = rollout
    self.node = node
    self.step = step
    self.wave = wave
    self.nodes = nodes
    self.durationSeconds = durationSeconds
    self.outcome = outcome
    self.message = message
  }
}
