/// A golden-image recipe, as declared in `images/*.yaml`.
public struct ImageRecipe: Sendable, Hashable, Codable {
  public enum Base: Sendable, Hashable, Codable {
    /// An existing local qcow2/raw file, pinned by its sha256.
    case file(path: String, sha256: String)
    /// Another Drover image.
    case image(ImageRef)
    /// A root filesystem assembled from local files (busybox from `busybox-static` + `files`).
    case rootfs(String)
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
