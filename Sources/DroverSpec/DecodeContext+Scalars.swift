import DroverBasics
import DroverModel
import LibYAML

/// Typed readers for scalar fields. Each returns nil after recording a located diagnostic.
extension DecodeContext {
  mutating func string(_ node: YAMLNode, _ field: String) -> String? {
    guard let text = node.scalar, !node.isNull else {
      error("spec.type", "\(field) must be a string, not \(node.kindDescription)", at: node)
      return nil
    }
    return text
  }

  /// A whole number in `range`; quoted numbers, floats and words are refused.
  ///
  /// Large ranges read "≥ low" (the bound users care about), small ones "between low and high".
  mutating func integer(_ node: YAMLNode, _ field: String, in range: ClosedRange<Int>, hint: String? = nil) -> Int? {
    let wide = range.upperBound >= 10_000
    let bound = wide ? "≥ \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
    guard let text = node.scalar, node.style == .plain, let value = Int(text) else {
      error("spec.type", "\(field) must be a whole number \(bound)", at: node, hint: hint)
      return nil
    }
    if value < range.lowerBound || !wide && value > range.upperBound {
      error("spec.range", "\(field) must be a whole number \(bound)", at: node, hint: hint)
      return nil
    }
    if value > range.upperBound {
      error("spec.range", "\(field) must be at most \(range.upperBound)", at: node, hint: hint)
      return nil
    }
    return value
  }

  /// A plain decimal number (`1`, `1.5`, `0.25`) in `range`: no exponent, no NaN or infinity.
  mutating func ratio(_ node: YAMLNode, _ field: String, in range: ClosedRange<Double>) -> Double? {
    let allowed = Set("0123456789.")
    guard let text = node.scalar, node.style == .plain, !text.isEmpty, text.count <= 12, text.allSatisfy({ allowed.contains($0) }),
      text.filter({ $0 == "." }).count <= 1, let value = Double(text), value.isFinite
    else {
      error("spec.type", "\(field) must be a number such as 1.5", at: node)
      return nil
    }
    guard range.contains(value) else {
      error("spec.range", "\(field) must be between \(range.lowerBound) and \(range.upperBound)", at: node)
      return nil
    }
    return value
  }

  /// `true` or `false` only: YAML 1.1's `yes`/`no`/`on`/`off` are refused as too easy to misread.
  mutating func boolean(_ node: YAMLNode, _ field: String) -> Bool? {
    if let text = node.scalar, node.style == .plain {
      if text == "true" { return true }
      if text == "false" { return false }
    }
    error("spec.type", "\(field) must be true or false", at: node)
    return nil
  }

  mutating func name(_ node: YAMLNode, _ field: String, maxLength: Int = 40) -> String? {
    guard let text = string(node, field) else { return nil }
    guard PoolName.isValid(text, maxLength: maxLength) else {
      error(
        "spec.name", "\(field) must be 1–\(maxLength) lower-case letters, digits or '-', starting with a letter",
        at: node, hint: "names become libvirt domain names such as '<pool>-1'")
      return nil
    }
    return text
  }

  mutating func byteSize(_ node: YAMLNode, _ field: String, min: ByteSize, max: ByteSize) -> ByteSize? {
    guard let text = node.scalar, !node.isNull, let size = SpecUnits.parseByteSize(text) else {
      error(
        "spec.unit", "\(field) must be a size with a unit, such as 512MiB or 2GiB", at: node,
        hint: "units: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000)")
      return nil
    }
    guard size >= min, size <= max else {
      error("spec.range", "\(field) must be between \(min) and \(max)", at: node)
      return nil
    }
    return size
  }

  mutating func timeSpan(_ node: YAMLNode, _ field: String, max: TimeSpan = .minutes(24 * 60)) -> TimeSpan? {
    guard let text = node.scalar, !node.isNull, let span = SpecUnits.parseTimeSpan(text) else {
      error("spec.unit", "\(field) must be a duration with a unit, such as 30s, 5m or 500ms", at: node)
      return nil
    }
    guard span <= max else {
      error("spec.range", "\(field) must be at most \(max)", at: node, hint: "every wait in Drover is finite")
      return nil
    }
    return span
  }

  /// A node count: a whole number or a percentage string such as `25%`.
  mutating func quantity(_ node: YAMLNode, _ field: String, allowZero: Bool = true) -> NodeQuantity? {
    let low = allowZero ? 0 : 1
    if let text = node.scalar, node.style == .plain, let n = Int(text), n >= low {
      return .count(n)
    }
    if let text = node.scalar, text.hasSuffix("%"), let p = Int(text.dropLast()), (low...100).contains(p) {
      return .percent(p)
    }
    error("spec.type", "\(field) must be a whole number ≥ \(low) or a percentage from \(low)% to 100%", at: node)
    return nil
  }

  mutating func stringList(_ node: YAMLNode, _ field: String) -> [String]? {
    guard case .sequence(let items) = node.content else {
      error("spec.type", "\(field) must be a list of strings, not \(node.kindDescription)", at: node)
      return nil
    }
    var result: [String] = []
    for item in items {
      guard let s = string(item, "each item of \(field)") else { return nil }
      result.append(s)
    }
    return result
  }

  /// A host file a spec names (kernel, initrd, base file, kubeconfig): in the project folder or
  /// under a root this machine allows, never elsewhere on the host.
  /// - Parameter trust: the file decides whom Drover trusts or what it runs (a kubeconfig): then
  ///   only the machine's roots hold it, never the project's own files.
  mutating func hostPath(_ node: YAMLNode, _ field: String, trust: Bool = false) -> String? {
    guard let text = string(node, field) else { return nil }
    if let why = (trust ? hostPaths.machineOnly : hostPaths).problem(text) {
      error(
        "spec.path.host", "\(field) '\(Terminal.escaped(text))' \(why)", at: node,
        hint: trust
          ? "keep it outside the project and \(machine.allowHint)"
          : "put the file in the project folder (a relative path is resolved against this file's folder), or \(machine.allowHint)")
      return nil
    }
    return text
  }

  /// A libvirt URI, or the name of a host entry in the machine's configuration (which alone may
  /// carry trust parameters).
  mutating func libvirtURI(_ node: YAMLNode, _ field: String) -> String? {
    guard let text = string(node, field) else { return nil }
    if !text.contains(":") && !text.contains("/") {
      if let uri = hostDirectory.uri(named: text) { return uri }
      let known = Set(hostDirectory.entries.map(\.name)).union(machine.hosts.filter { $0.value.uri != nil }.keys).sorted()
      error(
        "spec.host.unknown", "\(field) '\(Terminal.escaped(text))' is neither a libvirt URI nor a host entry", at: node,
        hint: known.isEmpty
          ? "write a URI (qemu:///system, qemu+ssh://user@host/system), or define the host in drover.yaml (hosts: [{name: \(Terminal.escaped(text)), uri: …}])"
          : "host entries: \(known.joined(separator: ", "))")
      return nil
    }
    guard SpecUnits.isLibvirtURI(text) else {
      error(
        "spec.uri", "\(field) '\(text)' is not a libvirt URI", at: node,
        hint: "examples: qemu:///system, qemu+ssh://user@host/system, test:///default")
      return nil
    }
    if let why = SpecUnits.unsafeURIReason(text) {
      error(
        "spec.uri.unsafe", "\(field) '\(text)' is refused: \(why), and specs come from pull requests", at: node,
        hint: "name the host by a plain URI (qemu+ssh://user@host/system), or by a host entry of this machine's configuration (\(machine.file ?? MachineSettings.defaultPath)), which alone may carry keys, known hosts or commands")
      return nil
    }
    return text
  }
}
