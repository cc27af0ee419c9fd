import Foundation

/// Everything the realtime stream can tell a client.
///
/// Durable events are written to the ordered log in the same transaction as the change and carry
/// an ``EventSeq``; ephemeral ones (typing, presence) are never stored and carry none.
/// On the wire each is an object with a `type` field named `<resource>.<pastTense>`.
public enum ServerEvent: Hashable, Sendable {
    case messageCreated(Message)
    case messageEdited(Message)
    case messageDeleted(Message)
    case reactionsChanged(chatID: ChatID, messageID: MessageID, reactions: [ReactionSummary])
    case messagePinned(chatID: ChatID, messageID: MessageID, by: UserID)
    case messageUnpinned(chatID: ChatID, messageID: MessageID, by: UserID)
    case receiptUpdated(chatID: ChatID, userID: UserID, readSeq: Int64)
    case chatCreated(Chat)
    case chatUpdated(Chat)
    /// One or more users were added (one event per request, sent once to the final member set).
    case membersJoined(chat: Chat, members: [ChatMember], by: UserID)
    case memberLeft(chat: Chat, userID: UserID, by: UserID)
    case memberRoleChanged(chatID: ChatID, userID: UserID, role: MemberRole, by: UserID)
    case sessionRevoked(sessionID: SessionID)
    // Ephemeral:
    case typing(chatID: ChatID, userID: UserID)
    case presenceChanged(Presence)

    /// The wire name, e.g. `message.created`.
    public var type: String {
        switch self {
        case .messageCreated: "message.created"
        case .messageEdited: "message.edited"
        case .messageDeleted: "message.deleted"
        case .reactionsChanged: "reactions.changed"
        case .messagePinned: "message.pinned"
        case .messageUnpinned: "message.unpinned"
        case .receiptUpdated: "receipt.updated"
        case .chatCreated: "chat.created"
        case .chatUpdated: "chat.updated"
        case .membersJoined: "member.joined"
        case .memberLeft: "member.left"
        case .memberRoleChanged: "member.role_changed"
        case .sessionRevoked: "session.revoked"
        case .typing: "typing.started"
        case .presenceChanged: "presence.changed"
        }
    }

    /// Whether the event belongs in the ordered log.
    public var isDurable: Bool {
        switch self {
        case .typing, .presenceChanged: false
        default: true
        }
    }

    /// The chat the event is about, if any.
    public var chatID: ChatID? {
        switch self {
        case .messageCreated(let m), .messageEdited(let m), .messageDeleted(let m): m.chatID
        case .reactionsChanged(let chatID, _, _), .messagePinned(let chatID, _, _), .messageUnpinned(let chatID, _, _),
            .receiptUpdated(let chatID, _, _), .memberRoleChanged(let chatID, _, _, _), .typing(let chatID, _):
            chatID
        case .chatCreated(let chat), .chatUpdated(let chat), .membersJoined(let chat, _, _), .memberLeft(let chat, _, _): chat.id
        case .sessionRevoked, .presenceChanged: nil
        }
    }
}

extension ServerEvent: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, message, chatID, messageID, reactions, by, userID, readSeq, chat, members, role, sessionID, presence
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "message.created": self = .messageCreated(try c.decode(Message.self, forKey: .message))
        case "message.edited": self = .messageEdited(try c.decode(Message.self, forKey: .message))
        case "message.deleted": self = .messageDeleted(try c.decode(Message.self, forKey: .message))
        case "reactions.changed":
            self = .reactionsChanged(
                chatID: try c.decode(ChatID.self, forKey: .chatID), messageID: try c.decode(MessageID.self, forKey: .messageID),
                reactions: try c.decode([ReactionSummary].self, forKey: .reactions))
        case "message.pinned":
            self = .messagePinned(
                chatID: try c.decode(ChatID.self, forKey: .chatID), messageID: try c.decode(MessageID.self, forKey: .messageID),
                by: try c.decode(UserID.self, forKey: .by))
        case "message.unpinned":
            self = .messageUnpinned(
                chatID: try c.decode(ChatID.self, forKey: .chatID), messageID: try c.decode(MessageID.self, forKey: .messageID),
                by: try c.decode(UserID.self, forKey: .by))
        case "receipt.updated":
            self = .receiptUpdated(
                chatID: try c.decode(ChatID.self, forKey: .chatID), userID: try c.decode(UserID.self, forKey: .userID),
                readSeq: try c.decode(Int64.self, forKey: .readSeq))
        case "chat.created": self = .chatCreated(try c.decode(Chat.self, forKey: .chat))
        case "chat.updated": self = .chatUpdated(try c.decode(Chat.self, forKey: .chat))
        case "member.joined":
            self = .membersJoined(
                chat: try c.decode(Chat.self, forKey: .chat), members: try c.decode([ChatMember].self, forKey: .members),
                by: try c.decode(UserID.self, forKey: .by))
        case "member.left":
            self = .memberLeft(
                chat: try c.decode(Chat.self, forKey: .chat), userID: try c.decode(UserID.self, forKey: .userID),
                by: try c.decode(UserID.self, forKey: .by))
        case "member.role_changed":
            self = .memberRoleChanged(
                chatID: try c.decode(ChatID.self, forKey: .chatID), userID: try c.decode(UserID.self, forKey: .userID),
                role: try c.decode(MemberRole.self, forKey: .role), by: try c.decode(UserID.self, forKey: .by))
        case "session.revoked": self = .sessionRevoked(sessionID: try c.decode(SessionID.self, forKey: .sessionID))
        case "typing.started":
            self = .typing(chatID: try c.decode(ChatID.self, forKey: .chatID), userID: try c.decode(UserID.self, forKey: .userID))
        case "presence.changed": self = .presenceChanged(try c.decode(Presence.self, forKey: .presence))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown event type \(type.prefix(40))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        switch self {
        case .messageCreated(let m), .messageEdited(let m), .messageDeleted(let m):
            try c.encode(m, forKey: .message)
        case .reactionsChanged(let chatID, let messageID, let reactions):
            try c.encode(chatID, forKey: .chatID)
            try c.encode(messageID, forKey: .messageID)
            try c.encode(reactions, forKey: .reactions)
        case .messagePinned(let chatID, let messageID, let by), .messageUnpinned(let chatID, let messageID, let by):
            try c.encode(chatID, forKey: .chatID)
            try c.encode(messageID, forKey: .messageID)
            try c.encode(by, forKey: .by)
        case .receiptUpdated(let chatID, let userID, let readSeq):
            try c.encode(chatID, forKey: .chatID)
            try c.encode(userID, forKey: .userID)
            try c.encode(readSeq, forKey: .readSeq)
        case .chatCreated(let chat), .chatUpdated(let chat):
            try c.encode(chat, forKey: .chat)
        case .membersJoined(let chat, let members, let by):
            try c.encode(chat, forKey: .chat)
            try c.encode(members, forKey: .members)
            try c.encode(by, forKey: .by)
        case .memberLeft(let chat, let userID, let by):
            try c.encode(chat, forKey: .chat)
            try c.encode(userID, forKey: .userID)
            try c.encode(by, forKey: .by)
        case .memberRoleChanged(let chatID, let userID, let role, let by):
            try c.encode(chatID, forKey: .chatID)
            try c.encode(userID, forKey: .userID)
            try c.encode(role, forKey: .role)
            try c.encode(by, forKey: .by)
        case .sessionRevoked(let sessionID):
            try c.encode(sessionID, forKey: .sessionID)
        case .typing(let chatID, let userID):
            try c.encode(chatID, forKey: .chatID)
            try c.encode(userID, forKey: .userID)
        case .presenceChanged(let presence):
            try c.encode(presence, forKey: .presence)
        }
    }
}

/// A durable event with its log position, as delivered to a client.
public struct SequencedEvent: Hashable, Sendable, Codable {
    public var seq: EventSeq
    public var event: ServerEvent

    public init(seq: EventSeq, event: ServerEvent) {
        self.seq = seq
        self.event = event
    }
}
