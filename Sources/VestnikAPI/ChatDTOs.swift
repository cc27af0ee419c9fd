import Foundation

/// `POST /api/v1/chats`
///
/// - `personal`: `members` holds exactly the other user.
/// - `group`/`channel`: `title` required; `members` are added as members, the creator is admin.
/// - `notes`: no members, no title; returns the caller's existing notes chat if there is one.
public struct CreateChatRequest: Codable, Sendable {
    public var kind: ChatKind
    public var title: String?
    public var description: String?
    public var members: [UserID]?

    public init(kind: ChatKind, title: String? = nil, description: String? = nil, members: [UserID]? = nil) {
        self.kind = kind
        self.title = title
        self.description = description
        self.members = members
    }
}

/// `PATCH /api/v1/chats/{chat_id}`: absent fields stay as they are.
public struct UpdateChatRequest: Codable, Sendable {
    public var title: String?
    public var description: String?
    public init(title: String? = nil, description: String? = nil) {
        self.title = title
        self.description = description
    }
}

/// A chat as its member sees it.
public struct ChatDetails: Codable, Sendable, Hashable {
    public var chat: Chat
    public var myRole: MemberRole
    public var members: [ChatMember]
    public init(chat: Chat, myRole: MemberRole, members: [ChatMember]) {
        self.chat = chat
        self.myRole = myRole
        self.members = members
    }
}

/// One row of the chat list.
public struct ChatListItem: Codable, Sendable, Hashable {
    public var chat: Chat
    public var myRole: MemberRole
    /// For a personal chat, the other member (clients show their name).
    public var peerID: UserID?
    public var lastMessage: Message?
    public var unreadCount: Int
    public var readSeq: Int64
    public init(chat: Chat, myRole: MemberRole, peerID: UserID?, lastMessage: Message?, unreadCount: Int, readSeq: Int64) {
        self.chat = chat
        self.myRole = myRole
        self.peerID = peerID
        self.lastMessage = lastMessage
        self.unreadCount = unreadCount
        self.readSeq = readSeq
    }
}

/// `GET /api/v1/chats`: newest activity first.
public struct ChatList: Codable, Sendable {
    public var chats: [ChatListItem]
    public init(chats: [ChatListItem]) { self.chats = chats }
}

/// `POST /api/v1/chats/{chat_id}/members`
public struct AddMembersRequest: Codable, Sendable {
    public var userIDs: [UserID]
    public init(userIDs: [UserID]) { self.userIDs = userIDs }
}

/// `PUT /api/v1/chats/{chat_id}/members/{user_id}/role`
public struct SetRoleRequest: Codable, Sendable {
    public var role: MemberRole
    public init(role: MemberRole) { self.role = role }
}

/// `GET /api/v1/chats/{chat_id}/members`
public struct MemberList: Codable, Sendable {
    public var members: [ChatMember]
    public init(members: [ChatMember]) { self.members = members }
}

/// `POST /api/v1/chats/{chat_id}/read`: marks everything up to and including the message read.
public struct MarkReadRequest: Codable, Sendable {
    public var messageID: MessageID
    public init(messageID: MessageID) { self.messageID = messageID }
}

/// The reader's position after `POST …/read` (never moves backwards).
public struct ReadPosition: Codable, Sendable {
    public var chatID: ChatID
    public var readSeq: Int64
    public var unreadCount: Int
    public init(chatID: ChatID, readSeq: Int64, unreadCount: Int) {
        self.chatID = chatID
        self.readSeq = readSeq
        self.unreadCount = unreadCount
    }
}
