import DroverBasics
import DroverRollout
import Foundation

/// Seals journal records and checks a journal read back, on both backends (the local file and
/// the database). Owns: which records may be acted on. Must not: act, or repair anything — a
/// journal that does not verify is refused whole, by name, and nothing in it is acted on.
public enum JournalIntegrity {
  /// The fields a record's MAC binds: the project, the pool, its number, its time (as bits: no
  /// rounding), every field, and the digest of the unsealed prefix before it.
  static func fields(_ r: JournalRecord, project: String, pool: String, prefix: String) -> [String?] {
    // The fence token, where there is one, is sealed too (two more fields: every field is
    // length-prefixed, so a record with them never encodes like one without).
    [project, pool, String(r.seq), String(r.time.bitPattern, radix: 16), r.rollout, r.event.rawValue, r.node, r.step, r.detail, prefix]
      + (r.fence.map { ["fence", String($0)] } ?? [])
  }

  /// The record, sealed.
  public static func seal(_ r: JournalRecord, with seal: JournalSeal, pool: String, prefix: String) -> JournalRecord {
    var sealed = r
    sealed.mac = nil
    sealed.mac = seal.mac(fields(sealed, project: seal.project, pool: pool, prefix: prefix))
    return sealed
  }

  /// The digest of the unsealed records an older Drover wrote before the first sealed one ("" when
  /// there are none, as in every journal this Drover started).
  public static func prefixDigest(_ prefix: [JournalRecord]) -> String {
    guard !prefix.isEmpty else { return "" }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var bytes: [UInt8] = []
    for r in prefix { bytes += ((try? encoder.encode(r)).map { [UInt8]($0) } ?? []) + [0x0A] }
    return ContentDigest.of(bytes).hex
  }

  /// A journal as read: its records in order, and the legacy prefix's digest new records bind.
  public struct Checked: Sendable {
    public var records: [JournalRecord]
    public var prefix: String
  }

  /// Checks every record in the order read: numbers strictly increasing (a replayed or reordered
  /// row is not), each sealed record's MAC verifies under `seal` for this project and pool, and
  /// no unsealed record follows a sealed one. Unsealed records before the first sealed one are an
  /// older Drover's (accepted as unkeyed domain records are: to finish or abort what they
  /// started), and every sealed record binds their digest. The first problem, by name, else the
  /// records.
  public static func check(_ records: [JournalRecord], seal: JournalSeal?, project: String, pool: String) -> Result<Checked, Diagnostic> {
    var prefix: [JournalRecord] = []
    var prefixDigest: String?
    var last = 0
    func refuse(_ r: JournalRecord, _ why: String) -> Result<Checked, Diagnostic> {
      .failure(
        Diagnostic.error(
          "state.journal-forged",
          "journal record \(r.seq) of pool \(pool) (rollout \(Terminal.printable(String(r.rollout.prefix(80)))), \(r.event.rawValue)) \(why); nothing in this journal is acted on",
          subject: "pool \(pool)",
          hint: "someone with access to the state changed it: remove the rows Drover did not write, or move the journal aside and let apply start afresh"))
    }
    for r in records {
      guard r.seq > last else { return refuse(r, "is numbered \(r.seq) after \(last): a replayed or reordered row") }
      last = r.seq
      if let mac = r.mac {
        guard let seal else {
          return .failure(
            Diagnostic.error(
              "records.no-key", "the journal of pool \(pool) is sealed with project \(project)'s key, which this machine does not hold",
              subject: "pool \(pool)", hint: "import the key (drover key import, or DROVER_PROJECT_KEY)"))
        }
        let digest = prefixDigest ?? Self.prefixDigest(prefix)
        prefixDigest = digest
        guard seal.project == project, seal.verifies(fields(r, project: project, pool: pool, prefix: digest), mac: mac) else {
          return refuse(r, "does not verify under project \(project)'s key: forged, edited, replayed or copied from another pool or project")
        }
      } else {
        guard prefixDigest == nil else { return refuse(r, "has no seal, after sealed records: a row Drover did not write") }
        prefix.append(r)
      }
    }
    return .success(Checked(records: records, prefix: prefixDigest ?? Self.prefixDigest(prefix)))
  }
}
