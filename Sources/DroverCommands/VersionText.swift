import DroverLibvirt

/// What `drover --version` prints: Drover's version, the commit it was built from, and the
/// libvirt library it runs with. Computed only when asked (loading libvirt is not free), which is
/// why the entry point answers `--version` before the parser does.
public enum VersionText {
  public static var full: String {
    "drover \(DroverCommand.version) (commit \(BuildInfo.commit))\nlibvirt \(LibvirtLibrary.version)"
  }

  /// Whether the command line asks for the version alone (`drover --version`).
  public static func isRequested(_ arguments: [String]) -> Bool { arguments == ["--version"] }
}
