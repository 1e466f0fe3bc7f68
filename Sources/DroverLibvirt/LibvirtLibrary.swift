import Libvirt

/// The libvirt library this binary runs with (for `drover --version` and bug reports): the
/// library found at run time, not the headers it was built against.
public enum LibvirtLibrary {
  public static var version: String { Libvirt.version }
}
