// swift-tools-version:6.0
import PackageDescription

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")

/// Layers, one direction (checked by `Tests/ArchitectureTests`, which reads this file: every import
/// of a target is declared here, and every declared edge points down):
/// CLI → engine → spec + libvirt adapter → thin Swift wrappers → C targets.
let package = Package(
  name: "drover",
  products: [.executable(name: "drover", targets: ["drover"])],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    // Already in the build through postgres-nio; named for the Prometheus client's HTTP.
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
  ],
  targets: [
    // C: imported only by their wrappers.
    .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
    .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
    // Thin wrappers that know nothing about Drover.
    .target(name: "Libvirt", dependencies: ["CLibvirt"]),
    .target(name: "LibYAML", dependencies: ["CYAML"]),
    // Pure core.
    .target(name: "DroverBasics", dependencies: [crypto]),
    .target(name: "DroverModel", dependencies: ["DroverBasics"]),
    .target(name: "DroverSpec", dependencies: ["DroverModel", "DroverBasics", "LibYAML"]),
    .target(name: "DroverRollout", dependencies: ["DroverModel"]),
    .target(name: "DroverPlan", dependencies: ["DroverModel", "DroverRollout", "DroverBasics"]),
    // Effects.
    .target(name: "DroverLibvirt", dependencies: ["DroverModel", "DroverBasics", "Libvirt"]),
    .target(name: "DroverEngine", dependencies: ["DroverPlan", "DroverRollout", "DroverModel", "DroverBasics"]),
    .target(name: "DroverBake", dependencies: ["DroverModel", "DroverBasics"]),
    // The shared state backend (PostgreSQL), behind the engine's state ports.
    .target(name: "DroverPostgres", dependencies: ["DroverEngine", "DroverRollout", "DroverBasics", .product(name: "PostgresNIO", package: "postgres-nio")]),
    // The metrics backend (Prometheus's HTTP API), behind the engine's MetricsQuerying port.
    .target(
      name: "DroverPrometheus",
      dependencies: [
        "DroverEngine", "DroverRollout", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]),
    // Edge.
    .target(
      name: "DroverCommands",
      dependencies: [
        "DroverSpec", "DroverPlan", "DroverRollout", "DroverEngine", "DroverBake", "DroverLibvirt", "DroverPostgres", "DroverPrometheus", "DroverModel",
        "DroverBasics", argumentParser,
      ],
      plugins: ["BuildInfo"]),
    // Names the commit in `drover --version`.
    .plugin(name: "BuildInfo", capability: .buildTool()),
    // The Swift runtime (standard library, Foundation, Dispatch) is linked into the binary, so it
    // runs on a Debian host without the toolchain: it needs only libvirt, libyaml, libstdc++ and
    // libc. `-static-stdlib` alone links the standard library; Foundation's own C parts are named
    // here because the modules are compiled once, for dynamic linking too (the tests link them).
    .executableTarget(
      name: "drover", dependencies: ["DroverCommands"],
      linkerSettings: [
        .unsafeFlags(["-static-stdlib"]),
        .linkedLibrary("CoreFoundation"), .linkedLibrary("_FoundationCShims"), .linkedLibrary("_FoundationCollections"),
        .linkedLibrary("_FoundationICU"),
      ]),
    .executableTarget(
      name: "drover-bench",
      dependencies: [
        "DroverBake", "DroverEngine", "DroverPostgres", "DroverLibvirt", "DroverPlan", "DroverRollout", "DroverSpec", "DroverModel", "DroverBasics", "Libvirt",
      ]),
    // Tests.

    .testTarget(name: "LibYAMLTests", dependencies: ["LibYAML"]),
    .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"]),
    .testTarget(name: "DroverPlanTests", dependencies: ["DroverPlan"]),
    .testTarget(name: "DroverRolloutTests", dependencies: ["DroverRollout"], exclude: ["Golden"]),
    .testTarget(name: "DroverEngineTests", dependencies: ["DroverEngine", "DroverModel", "DroverBasics", "DroverPlan", "DroverRollout", "DroverPrometheus", crypto]),
    .testTarget(name: "DroverLibvirtTests", dependencies: ["DroverLibvirt", "DroverEngine", "DroverPlan", "DroverBake", "Libvirt"]),
    .testTarget(name: "DroverSpecTests", dependencies: ["DroverSpec", "DroverCommands"]),
    .testTarget(name: "DroverBakeTests", dependencies: ["DroverBake", "DroverLibvirt", "DroverPlan", "Libvirt"]),
    .testTarget(
      name: "DroverCLITests", dependencies: ["Libvirt", "DroverEngine", "DroverRollout", "DroverLibvirt", "DroverPlan", "DroverModel", "DroverBasics", "DroverPostgres"]),
    .testTarget(name: "RecipeTests", dependencies: ["LibYAML"]),
    .testTarget(name: "ArchitectureTests"),
    .testTarget(name: "SecurityTests", dependencies: ["DroverSpec", "DroverBake", "DroverBasics", "DroverModel", "DroverEngine"]),
  ]
)
