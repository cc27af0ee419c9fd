import ArgumentParser

@main
struct Vestnik: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vestnik",
        abstract: "Vestnik: a self-hosted corporate messenger.",
        subcommands: [ServeCommand.self, AdminCommand.self]
    )
}
