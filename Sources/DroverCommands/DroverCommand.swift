import ArgumentParser

/// The `drover` root command.
public struct DroverCommand: ParsableCommand {
  public static let version = "0.1.0"

  public static let configuration = CommandConfiguration(
    commandName: "drover",
    abstract: "Manage fleets of libvirt virtual machines as declarative node pools.",
    discussion: """
      Drover reads pools/*.yaml and images/*.yaml, observes the libvirt hosts they name, and plans \
      and applies the changes that make the hosts match.
      """,
    version: version,
    subcommands: [
      ValidateCommand.self, BakeCommand.self, ImagesCommand.self, PlanCommand.self, ShowCommand.self, ApplyCommand.self, StatusCommand.self,
      RolloutCommand.self, HealCommand.self, WatchCommand.self, DriftCommand.self, HostCommand.self, UnlockCommand.self, KeyCommand.self, AdoptCommand.self, StateCommand.self,
    ]
  )

  public init() {}
}
