import Foundation

/// The kinds of chat, which decide who may post and who may manage it.
public enum ChatKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// Exactly one per pair of users; two members, no management.
    case personal
    /// Members post; admins manage.
    case group
    /// Only admins post; members read.
    case channel
    /// A chat with yourself.
    case notes
}

/// A member's role in a chat.
public enum MemberRole: String, Hashable, Sendable, Codable {
    case admin
    case member
}

/// A chat's shared state.
public struct Chat: Hashable, Sendable, Codable {
    public var id: ChatID
    public var kind: ChatKind
    public var title: String
    public var description: String
    public var createdBy: UserID
    public var createdAt: Date
    public var memberCount: Int
    /// The per-chat sequence number of the newest message (0 when empty).
    public var lastMessageSeq: Int64
    public var lastActivityAt: Date

    public init(
        id: ChatID, kind: ChatKind, title: String, description: String, createdBy: UserID, createdAt: Date,
        memberCount: Int, lastMessageSeq: Int64, lastActivityAt: Date
    ) {
        self.id = id
        self.kind = kind
        self.title = title
        self.description = description
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.memberCount = memberCount
        self.lastMessageSeq = lastMessageSeq
        self.lastActivityAt = lastActivityAt
    }
}

/// One member of a chat.
public struct ChatMember: Hashable, Sendable, Codable {
    public var userID: UserID
    public var role: MemberRole
    public var joinedAt: Date
    /// The per-chat sequence number of the newest message this member has read.
    public var readSeq: Int64

    public init(userID: UserID, role: MemberRole, joinedAt: Date, readSeq: Int64) {
        self.userID = userID
        self.role = role
        self.joinedAt = joinedAt
        self.readSeq = readSeq
    }
}
