import DroverCommands

DroverCommand.main()
