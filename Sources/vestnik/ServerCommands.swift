import ArgumentParser

/// `vestnik serve` — placeholder until the server lands (owned by the server author).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the messenger server.")
    func run() async throws {}
}

/// `vestnik admin …` — placeholder until the server lands (owned by the server author).
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Administer accounts.")
}
