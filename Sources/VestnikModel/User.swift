import Foundation

/// What kind of account a directory entry is (BotX `user_kind`).
public enum UserKind: String, Hashable, Sendable, Codable {
    /// A person with a login.
    case user
    /// A BotX-compatible bot: its id is the bot's `bot_id`; it has no password and acts through
    /// the BotX API.
    case botx
}

/// A directory entry: a person or a bot that can take part in chats.
public struct User: Hashable, Sendable, Codable {
    public var id: UserID
    /// `user` for people, `botx` for bots. Absent in older payloads, which means `user`.
    public var kind: UserKind
    public var login: String
    public var displayName: String
    public var email: String?
    public var department: String?
    public var position: String?
    public var isAdmin: Bool
    public var isBlocked: Bool
    public var createdAt: Date

    public init(
        id: UserID, login: String, displayName: String, email: String? = nil, department: String? = nil,
        position: String? = nil, isAdmin: Bool = false, isBlocked: Bool = false, createdAt: Date, kind: UserKind = .user
    ) {
        self.id = id
        self.kind = kind
        self.login = login
        self.displayName = displayName
        self.email = email
        self.department = department
        self.position = position
        self.isAdmin = isAdmin
        self.isBlocked = isBlocked
        self.createdAt = createdAt
    }

    private enum CodingKeys: String, CodingKey {
        case id, kind, login, displayName, email, department, position, isAdmin, isBlocked, createdAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(UserID.self, forKey: .id)
        kind = try c.decodeIfPresent(UserKind.self, forKey: .kind) ?? .user
        login = try c.decode(String.self, forKey: .login)
        displayName = try c.decode(String.self, forKey: .displayName)
        email = try c.decodeIfPresent(String.self, forKey: .email)
        department = try c.decodeIfPresent(String.self, forKey: .department)
        position = try c.decodeIfPresent(String.self, forKey: .position)
        isAdmin = try c.decode(Bool.self, forKey: .isAdmin)
        isBlocked = try c.decode(Bool.self, forKey: .isBlocked)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
    }
}

/// A login session as its owner sees it (never the token).
public struct Session: Hashable, Sendable, Codable {
    public var id: SessionID
    public var userID: UserID
    public var deviceName: String
    public var createdAt: Date
    public var lastSeenAt: Date
    public var expiresAt: Date

    public init(id: SessionID, userID: UserID, deviceName: String, createdAt: Date, lastSeenAt: Date, expiresAt: Date) {
        self.id = id
        self.userID = userID
        self.deviceName = deviceName
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
    }
}

/// Whether a user is connected right now. Ephemeral: computed from live connections, never stored.
public struct Presence: Hashable, Sendable, Codable {
    public var userID: UserID
    public var online: Bool
    public var lastSeenAt: Date?

    public init(userID: UserID, online: Bool, lastSeenAt: Date?) {
        self.userID = userID
        self.online = online
        self.lastSeenAt = lastSeenAt
    }
}
