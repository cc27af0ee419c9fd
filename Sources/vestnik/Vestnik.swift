import ArgumentParser

@main
struct Vestnik: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vestnik",
        abstract: "Vestnik: a self-hosted corporate messenger.",
        subcommands: [
            ServeCommand.self, AdminCommand.self,
            // Client commands (Client*.swift); all server access goes through VestnikKit.
            LoginCommand.self, LogoutCommand.self, WhoamiCommand.self, SessionsCommand.self, UsersCommand.self,
            ChatsCommand.self, ChatCommand.self,
            SendCommand.self, EditCommand.self, DeleteCommand.self, ReactCommand.self, PinCommand.self,
            UnpinCommand.self, HistoryCommand.self, EditsCommand.self, ReadCommand.self, ReadByCommand.self,
            TailCommand.self, PressCommand.self, BotCommandsCommand.self,
        ]
    )
}
