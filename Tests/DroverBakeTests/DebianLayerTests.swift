import DroverBake
import DroverModel
import Testing

/// #18: the Debian package layer's key and command line, and what a distro image brings
/// (kernel, initrd, packages) read from its disk — pure functions, table-tested.
@Suite struct DebianLayerTests {
  static let machine = DebianLayer.MachineApt(
    suite: "bookworm",
    sources: ["/etc/apt/sources.list.d/debian.sources": "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"],
    lists: ["deb.debian.org_debian_dists_bookworm_InRelease": "aa"])
  static let base = ImageRecipe.DebianBase(suite: "bookworm", packages: ["systemd-sysv", "linux-image-amd64"])

  @Test func theKeyMovesWithEveryInputAndNothingElse() {
    let key = DebianLayer.key(Self.base, machine: Self.machine, toolVersion: "mmdebstrap 1.3.5")
    #expect(key == DebianLayer.key(ImageRecipe.DebianBase(suite: "bookworm", packages: ["linux-image-amd64", "systemd-sysv"]), machine: Self.machine, toolVersion: "mmdebstrap 1.3.5"), "package order does not count")
    var updated = Self.machine
    updated.lists["deb.debian.org_debian_dists_bookworm_InRelease"] = "bb"
    var resourced = Self.machine
    resourced.sources["/etc/apt/sources.list.d/debian.sources"] = "Types: deb\nURIs: http://mirror.example/debian\n"
    let others = [
      DebianLayer.key(ImageRecipe.DebianBase(suite: "bookworm", packages: ["systemd-sysv"]), machine: Self.machine, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(ImageRecipe.DebianBase(suite: "trixie", packages: Self.base.packages), machine: Self.machine, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(ImageRecipe.DebianBase(suite: "bookworm", packages: Self.base.packages, variant: "apt"), machine: Self.machine, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(ImageRecipe.DebianBase(suite: "bookworm", packages: Self.base.packages, components: ["main", "contrib"]), machine: Self.machine, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(Self.base, machine: updated, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(Self.base, machine: resourced, toolVersion: "mmdebstrap 1.3.5"),
      DebianLayer.key(Self.base, machine: Self.machine, toolVersion: "mmdebstrap 1.4.0"),
    ]
    #expect(Set(others + [key]).count == others.count + 1, "every input changes the key")
  }

  @Test func theMachinesOwnSourcesFeedMmdebstrap() {
    let argv = DebianLayer.command(Self.base, target: "/x/layer.tar", machine: Self.machine)
    #expect(argv == [
      "/usr/bin/mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase", "--components=main",
      "--include=linux-image-amd64,systemd-sysv", "bookworm", "/x/layer.tar", "/etc/apt/sources.list.d/debian.sources",
    ])
    // Another suite than the machine's: the machine's archive, for that suite.
    let trixie = ImageRecipe.DebianBase(suite: "trixie")
    #expect(DebianLayer.mirrors(for: trixie, machine: Self.machine) == ["http://deb.debian.org/debian"])
  }

  @Test func aMissingPackageIsNamed() {
    let stderr = "I: running apt-get update...\nE: Unable to locate package systemd-sysvv\nE: mmdebstrap failed"
    let base = ImageRecipe.DebianBase(suite: "bookworm", packages: ["systemd-sysvv"])
    #expect(DebianLayer.explain(stderr, base: base) == "package systemd-sysvv not found in Debian bookworm (the machine's apt sources)")
    #expect(DebianLayer.explain("E: Package 'foo' has no installation candidate", base: ImageRecipe.DebianBase(suite: "bookworm", packages: ["foo"])).contains("package foo not found"))
    #expect(DebianLayer.explain("E: could not reach the mirror", base: base).hasPrefix("mmdebstrap could not build Debian bookworm: E: could not reach"))
  }

  @Test func theNewestKernelWithItsInitrdIsChosen() {
    let ls = """
      /2/040755/0/0/./
      /12/100644/0/0/vmlinuz-6.1.0-9-amd64/7000/
      /13/100644/0/0/initrd.img-6.1.0-9-amd64/9000/
      /14/100644/0/0/vmlinuz-6.1.0-28-amd64/7000/
      /15/100644/0/0/initrd.img-6.1.0-28-amd64/9000/
      /16/100644/0/0/vmlinuz-6.1.0-30-amd64/7000/
      /17/120777/0/0/initrd.img-6.1.0-30-amd64/20/
      /18/100644/0/0/vmlinuz-6.2.0-1-amd64;rm/7000/

      """
    let entries = ImageOwnBoot.listing(ls)
    #expect(entries.count == 8)
    #expect(ImageOwnBoot.choose(entries) == "6.1.0-28-amd64", "6.1.0-30 has only a link for its initrd; a name with ';' is never a release")
    #expect(ImageOwnBoot.choose(ImageOwnBoot.listing("/2/040755/0/0/./\n")) == nil)
  }

  @Test func installedPackagesComeFromDpkgStatus() {
    let status = """
      Package: base-files
      Status: install ok installed
      Architecture: amd64
      Version: 12.4+deb12u5
      Description: Debian base system
       miscellaneous files

      Package: removed
      Status: deinstall ok config-files
      Version: 1.0

      Package: libc6
      Status: install ok installed
      Architecture: i386
      Version: 2.36-9

      """
    #expect(ImageOwnBoot.installedPackages(status) == [
      .init(name: "base-files", version: "12.4+deb12u5"), .init(name: "libc6:i386", version: "2.36-9"),
    ])
  }
}
