import Foundation

/// `GET /api/v1/chats/{chat_id}/bot-commands`: the command menus of the chat's bots, as each bot
/// reported them from its `/status` (refreshed by the server).
public struct BotCommandsResponse: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var bot: User
        public var commands: [BotCommand]
        public init(bot: User, commands: [BotCommand]) {
            self.bot = bot
            self.commands = commands
        }
    }

    public var bots: [Entry]
    public init(bots: [Entry]) { self.bots = bots }
}

/// `POST /api/v1/messages/{message_id}/press`: presses a button of a bot message.
///
/// `button` is the label, the command, or the 1-based position (bubble buttons first, row by
/// row, then keyboard buttons). The bot receives the button's command with its data.
public struct PressButtonRequest: Codable, Sendable {
    public var button: String
    public init(button: String) { self.button = button }
}

/// The answer to a button press: the message it put in the chat (absent for silent buttons).
public struct PressButtonResponse: Codable, Sendable {
    public var message: Message?
    public init(message: Message?) { self.message = message }
}
