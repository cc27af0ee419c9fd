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

/// What an administrator lets a bot do beyond acting in the chats it is a member of
/// (`vestnik admin bot add|set --allow …`). New bots get none.
public enum BotPermission: String, Hashable, Sendable, Codable, CaseIterable, Comparable {
    /// BotX `chats/create`: open chats with any users.
    case createChats = "create-chats"
    /// BotX `users/users_as_csv`: export the whole directory.
    case directoryExport = "directory-export"

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// Parses a comma-separated list (`create-chats,directory-export`); `none` or "" is empty.
    public static func parseList(_ raw: String) -> Set<BotPermission>? {
        var result = Set<BotPermission>()
        for part in raw.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty && part != "none" {
            guard let permission = BotPermission(rawValue: part) else { return nil }
            result.insert(permission)
        }
        return result
    }

    /// The stored and printed form: sorted, comma-separated.
    public static func listString(_ permissions: Set<BotPermission>) -> String {
        permissions.sorted().map(\.rawValue).joined(separator: ",")
    }
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
