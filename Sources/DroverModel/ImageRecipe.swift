/// A golden-image recipe, as declared in `images/*.yaml`.
public struct ImageRecipe: Sendable, Hashable, Codable {
  public enum Base: Sendable, Hashable, Codable {
    /// An existing local qcow2/raw file, pinned by its sha256.
    case file(path: String, sha256: String)
    /// Another Drover image.
    case image(ImageRef)
    /// A root filesystem assembled from local files (busybox from `busybox-static` + `files`).
    case rootfs(String)
    /// A Debian root filesystem built from packages with `mmdebstrap`, from the machine's apt
    /// sources; the image boots its own kernel and initrd from its `/boot`.
    case debian(DebianBase)
  }

  /// `base: {debian: bookworm, packages: [...], variant: minbase, components: [main]}`.
  public struct DebianBase: Sendable, Hashable, Codable {
    public var suite: String
    /// Sorted and without duplicates: the order in a recipe changes nothing.
    public var packages: [String]
    public var variant: String
    public var components: [String]

    public init(suite: String, packages: [String] = [], variant: String = "minbase", components: [String] = ["main"]) {
      self.suite = suite
      self.packages = Array(Set(packages)).sorted()
      self.variant = variant
      self.components = components
    }

    /// mmdebstrap's variants.
    public static let variants = ["extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"]

    /// Whether `name` is a Debian package name (policy 5.6.1: lower case, digits, `+-.`, at least
    /// two characters, starting alphanumeric): never an option to the tools it is passed to.
    public static func isPackageName(_ name: String) -> Bool {
      let u = Array(name.utf8)
      guard u.count >= 2, u.count <= 128, let first = u.first, (0x61...0x7A).contains(first) || (0x30...0x39).contains(first) else { return false }
      return u.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }
    }

    /// Suites and components: lower-case letters, digits and `-` (`bookworm`, `non-free-firmware`).
    public static func isWord(_ name: String) -> Bool {
      let u = Array(name.utf8)
      guard !u.isEmpty, u.count <= 64, let first = u.first, (0x61...0x7A).contains(first) else { return false }
      return u.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }
  }

  public struct File: Sendable, Hashable, Codable {
    /// Host path, relative to the recipe's folder unless absolute.
    public var source: String
    /// Absolute path inside the image.
    public var path: String
    public var mode: UInt16

    public init(source: String, path: String, mode: UInt16) {
      self.source = source
      self.path = path
      self.mode = mode
    }
  }

  public enum Compression: String, Sendable, Hashable, Codable { case none, zstd }

  public var name: String
  public var version: String
  public var base: Base
  public var files: [File]
  public var commands: [String]
  public var commandTimeout: TimeSpan
  public var kernel: String?
  public var initrd: String?
  public var cmdline: String?
  public var size: ByteSize
  public var format: String
  public var compression: Compression

  public init(
    name: String, version: String, base: Base, files: [File] = [], commands: [String] = [],
    commandTimeout: TimeSpan = .minutes(10), kernel: String? = nil, initrd: String? = nil, cmdline: String? = nil,
    size: ByteSize = .mebibytes(64), format: String = "qcow2", compression: Compression = .none
  ) {
    self.name = name
    self.version = version
    self.base = base
    self.files = files
    self.commands = commands
    self.commandTimeout = commandTimeout
    self.kernel = kernel
    self.initrd = initrd
    self.cmdline = cmdline
    self.size = size
    self.format = format
    self.compression = compression
  }

  public var reference: ImageRef { ImageRef(name: name, selector: .version(version)) }
}
