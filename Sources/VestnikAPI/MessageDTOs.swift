import Foundation

/// `POST /api/v1/chats/{chat_id}/messages`
///
/// `client_message_id` makes the send idempotent: a retry with the same id returns the original
/// message (status 200 instead of 201) and creates nothing. `@login` and `@all` in the text become
/// mentions; `mentions` may name more users explicitly.
public struct SendMessageRequest: Codable, Sendable {
    public var text: String?
    public var clientMessageID: String?
    public var replyTo: MessageID?
    /// Forward this message (which the sender must be able to read); `text` is then ignored.
    public var forwardOf: MessageID?
    public var mentions: [Mention]?

    public init(text: String?, clientMessageID: String? = nil, replyTo: MessageID? = nil, forwardOf: MessageID? = nil, mentions: [Mention]? = nil) {
        self.text = text
        self.clientMessageID = clientMessageID
        self.replyTo = replyTo
        self.forwardOf = forwardOf
        self.mentions = mentions
    }
}

/// `PATCH /api/v1/messages/{message_id}`
public struct EditMessageRequest: Codable, Sendable {
    public var text: String
    public init(text: String) { self.text = text }
}

/// `GET /api/v1/chats/{chat_id}/messages`: oldest first.
public struct MessagePage: Codable, Sendable {
    public var messages: [Message]
    /// There are older messages than the first one here.
    public var hasMoreBefore: Bool
    /// There are newer messages than the last one here.
    public var hasMoreAfter: Bool
    public init(messages: [Message], hasMoreBefore: Bool, hasMoreAfter: Bool) {
        self.messages = messages
        self.hasMoreBefore = hasMoreBefore
        self.hasMoreAfter = hasMoreAfter
    }
}

/// `GET /api/v1/messages/{message_id}/edits`: every version, the original first.
public struct EditHistory: Codable, Sendable {
    public var messageID: MessageID
    public var versions: [MessageEdit]
    public init(messageID: MessageID, versions: [MessageEdit]) {
        self.messageID = messageID
        self.versions = versions
    }
}

/// `PUT|DELETE /api/v1/messages/{message_id}/reactions/{emoji}`
public struct ReactionsResponse: Codable, Sendable {
    public var messageID: MessageID
    public var reactions: [ReactionSummary]
    public init(messageID: MessageID, reactions: [ReactionSummary]) {
        self.messageID = messageID
        self.reactions = reactions
    }
}

/// `GET /api/v1/messages/{message_id}/read-by`
public struct ReadByResponse: Codable, Sendable {
    public var messageID: MessageID
    public var users: [UserID]
    public init(messageID: MessageID, users: [UserID]) {
        self.messageID = messageID
        self.users = users
    }
}

/// `GET /api/v1/chats/{chat_id}/pins`
public struct MessageList: Codable, Sendable {
    public var messages: [Message]
    public init(messages: [Message]) { self.messages = messages }
}
