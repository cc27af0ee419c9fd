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

/// A chat's stealth ("secret") settings, set by bots (BotX `stealth_set`).
///
/// Messages sent in stealth mode in such a chat disappear: `expireIn` seconds after they were
/// sent, and `burnIn` seconds after they were sent as well (Vestnik has no per-reader burn timer
/// yet, so the stricter of the two applies from sending). `disableWeb` asks web clients not to
/// show the chat's stealth messages.
public struct StealthSettings: Hashable, Sendable, Codable {
    public var burnIn: Int?
    public var expireIn: Int?
    public var disableWeb: Bool

    public init(burnIn: Int?, expireIn: Int?, disableWeb: Bool) {
        self.burnIn = burnIn
        self.expireIn = expireIn
        self.disableWeb = disableWeb
    }

    /// Seconds after sending when a stealth message goes, if any.
    public var lifetime: Int? { [burnIn, expireIn].compactMap { $0 }.min() }
}
