/// One user-facing problem: what, where, about what, and how to fix it.
///
/// Every layer reports problems as these values; only the CLI edge renders them (human or JSON),
/// so a message is written once and shown the same everywhere.
public struct Diagnostic: Sendable, Hashable, Codable, Error {
  public enum Severity: String, Sendable, Codable { case error, warning, note }

  public var severity: Severity
  /// A stable dotted identifier, documented in the README: `spec.replicas.range`.
  public var code: String
  /// One line, lower-case start, no trailing period.
  public var message: String
  public var location: SourceRange?
  /// What it is about when there is no source location: "pool web", "host test:///default".
  public var subject: String?
  public var hint: String?

  public init(
    _ severity: Severity = .error, code: String, message: String, location: SourceRange? = nil,
    subject: String? = nil, hint: String? = nil
  ) {
    self.severity = severity
    self.code = code
    self.message = message
    self.location = location
    self.subject = subject
    self.hint = hint
  }

  public static func error(
    _ code: String, _ message: String, at location: SourceRange? = nil, subject: String? = nil, hint: String? = nil
  ) -> Diagnostic {
    Diagnostic(.error, code: code, message: message, location: location, subject: subject, hint: hint)
  }

  public static func warning(
    _ code: String, _ message: String, at location: SourceRange? = nil, subject: String? = nil, hint: String? = nil
  ) -> Diagnostic {
    Diagnostic(.warning, code: code, message: message, location: location, subject: subject, hint: hint)
  }
}

/// Something that can explain itself as diagnostics (typed errors of the lower layers).
public protocol DiagnosticConvertible: Error {
  var diagnostics: [Diagnostic] { get }
}

extension Diagnostic: DiagnosticConvertible {
  public var diagnostics: [Diagnostic] { [self] }

  /// One line saying what `error` was, for a reason carried inside another message: its first
  /// diagnostic's message when it explains itself, else its description.
  public static func line(of error: any Error) -> String {
    first(of: error, code: "internal").message
  }
}

extension Array where Element == Diagnostic {
  public var hasErrors: Bool { contains { $0.severity == .error } }

  /// Sorted by file, then position, then message: the order users read them in.
  public func sortedForDisplay() -> [Diagnostic] {
    enumerated().sorted { a, b in
      let la = a.element.location, lb = b.element.location
      switch (la, lb) {
      case (nil, nil): return a.offset < b.offset
      case (nil, _): return false
      case (_, nil): return true
      case (let x?, let y?):
        if x.file != y.file { return x.file < y.file }
        if x.start != y.start { return x.start < y.start }
        return a.offset < b.offset
      }
    }.map(\.element)
  }
}
