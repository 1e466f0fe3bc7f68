import DroverBasics
import DroverModel
import DroverSpec
import Testing

/// #18: `base: {debian: SUITE, packages: [...]}` — decoded to plain, checked names, so nothing
/// from a recipe reaches mmdebstrap's command line but package, suite and component names.
@Suite struct DebianRecipeTests {
  func load(_ yaml: String) -> (SpecSet, [Diagnostic]) {
    SpecLoader.load([SpecSource(path: "images/deb.yaml", kind: .recipe, bytes: Array(yaml.utf8))])
  }

  @Test func aDebianBaseDecodesSortedWithDefaults() throws {
    let (set, diagnostics) = load("name: deb\nversion: v1\nbase: {debian: bookworm, packages: [systemd-sysv, linux-image-amd64, systemd-sysv]}\n")
    #expect(!diagnostics.hasErrors, "\(diagnostics)")
    let recipe = try #require(set.recipes.first)
    guard case .debian(let base) = recipe.recipe.base else {
      Issue.record("not a debian base: \(recipe.recipe.base)")
      return
    }
    #expect(base == ImageRecipe.DebianBase(suite: "bookworm", packages: ["linux-image-amd64", "systemd-sysv"]))
    #expect(base.variant == "minbase" && base.components == ["main"])
    #expect(recipe.recipe.size == .mebibytes(2048), "a Debian root file system gets a 2 GiB disk by default")
    #expect(recipe.baseRange?.start.line == 3)
  }

  @Test(arguments: [
    ("base: {debian: bookworm, packages: [\"--root=/\"]}", "'--root=/' is not a Debian package name", 3),
    ("base: {debian: bookworm, packages: [\"a b\"]}", "'a b' is not a Debian package name", 3),
    ("base: {debian: \"bookworm; rm -rf /\"}", "debian must name a suite", 3),
    ("base: {debian: bookworm, variant: huge}", "variant must be one of", 3),
    ("base: {debian: bookworm, components: [\"main,contrib\"]}", "is not a component name", 3),
    ("base: {debian: bookworm, packages: curl}", "packages must be a list", 3),
    ("base: {debian: bookworm, rootfs: busybox}", "base must have only one of: rootfs, debian", 3),
    ("base: {rootfs: busybox, packages: [curl]}", "unknown key", 3),
  ])
  func badDebianBasesAreLocatedErrors(_ base: String, _ message: String, _ line: Int) {
    let (_, diagnostics) = load("name: deb\nversion: v1\n\(base)\n")
    let errors = diagnostics.filter { $0.severity == .error }
    #expect(errors.contains { $0.message.localizedCaseInsensitiveContains(message) && $0.location?.start.line == line }, "\(errors.map { "\($0.location?.start.line ?? 0): \($0.message)" })")
  }

  @Test(arguments: [("curl", true), ("g++", true), ("libc6.1", true), ("x", false), ("-x", false), ("Curl", false), ("a/b", false), ("", false)])
  func packageNames(_ name: String, _ valid: Bool) {
    #expect(ImageRecipe.DebianBase.isPackageName(name) == valid)
  }

  /// #18: `access` and `cloud_init` of a pool are checked where they are written.
  @Test(arguments: [
    ("access: {ssh_keys: [\"ssh-ed25519 not base64!\"]}", "must be OpenSSH public keys"),
    ("access: {ssh_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\\nx\"]}", "must be OpenSSH public keys"),
    ("access: {ssh_keys: ssh-ed25519}", "ssh_keys must be a list"),
    ("cloud_init: {user_data: \"runcmd: [reboot]\"}", "must be a #cloud-config document"),
    ("cloud_init: {userdata: x}", "unknown key"),
  ])
  func badAccessAndCloudInitAreLocatedErrors(_ line: String, _ message: String) {
    let yaml = "name: web\nhosts: [qemu:///system]\nreplicas: 1\nimage: demo@v1\n\(line)\n"
    let (_, diagnostics) = SpecLoader.load([SpecSource(path: "pools/web.yaml", kind: .pool, bytes: Array(yaml.utf8))])
    #expect(diagnostics.contains { $0.severity == .error && $0.message.localizedCaseInsensitiveContains(message) && $0.location?.start.line == 5 }, "\(diagnostics.map(\.message))")
  }
}
