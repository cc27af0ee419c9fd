import Foundation

/// A directory entry: a person (later also a bot) that can take part in chats.
public struct User: Hashable, Sendable, Codable {
    public var id: UserID
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
        position: String? = nil, isAdmin: Bool = false, isBlocked: Bool = false, createdAt: Date
    ) {
        self.id = id
        self.login = login
        self.displayName = displayName
        self.email = email
        self.department = department
        self.position = position
        self.isAdmin = isAdmin
        self.isBlocked = isBlocked
        self.createdAt = createdAt
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
