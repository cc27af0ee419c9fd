import Foundation

/// One entry of a bot's command menu, as the bot reports it from `/status`.
public struct BotCommand: Hashable, Sendable, Codable {
    /// What to send, e.g. `/echo`.
    public var body: String
    public var name: String
    public var description: String

    public init(body: String, name: String, description: String) {
        self.body = body
        self.name = name
        self.description = description
    }
}

/// Which chat messages a bot receives (BotX `allowed_data`).
public enum BotAllowedData: String, Hashable, Sendable, Codable, CaseIterable {
    /// Only messages starting with `/`, plus button presses and system events.
    case commands
    /// Every message in its chats.
    case all
}
