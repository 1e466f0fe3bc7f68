import DroverCommands
import Foundation

if VersionText.isRequested(Array(CommandLine.arguments.dropFirst())) {
  print(VersionText.full)
  exit(0)
}
DroverCommand.main()
