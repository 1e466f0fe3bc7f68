// Module DroverCommands
// Owns: the CLI edge: parse, call one engine entry point, render (human/JSON), the one place errors leave.
// Must not: hold decisions or talk to libvirt except through the adapters.
