import ArgumentParser
import Foundation
import VestnikKit

/// `vestnik press MESSAGE BUTTON`
struct PressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "press", abstract: "Press a button of a bot message (by label, command, or number as `history` shows it).")
    @Argument(help: "Message id.") var message: String
    @Argument(help: "Button label, command, or number.") var button: String

    func run() async throws {
        try await ClientSession.run { session in
            let shown = try await session.client.pressButton(messageID: try ClientSession.messageID(message), button: button)
            Output.line(shown.map { "Pressed; sent \($0.id)" } ?? "Pressed")
        }
    }
}

/// `vestnik bot commands CHAT`
struct BotCommandsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bot", abstract: "Bots in your chats.", subcommands: [Commands.self])

    struct Commands: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "commands", abstract: "The command menus of the bots in a chat.")
        @Argument(help: "Chat id, title, or a personal chat's peer login.") var chat: String
        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let menus = try await session.client.botCommands(chatID: try await session.resolveChat(chat))
                if output.json { return try Output.json(menus) }
                for entry in menus.bots {
                    Output.line("\(entry.bot.displayName) (\(entry.bot.id))")
                    for command in entry.commands { Output.line("  \(command.body)\t\(command.description)") }
                    if entry.commands.isEmpty { Output.line("  (no commands)") }
                }
            }
        }
    }
}
