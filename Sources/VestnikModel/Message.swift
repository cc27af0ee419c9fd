import Foundation

/// A message as every member sees it now (reactions and pin state included).
///
/// A deleted message stays as a tombstone: `deletedAt` is set and `text` is empty, so clients can
/// show "message deleted" in place and replies keep their anchor.
public struct Message: Hashable, Sendable, Codable {
    public var id: MessageID
    public var chatID: ChatID
    /// Position within the chat, 1-based and gap-free; history paginates over it.
    public var chatSeq: Int64
    public var senderID: UserID
    public var text: String
    public var replyTo: MessageID?
    public var forwardedFrom: ForwardOrigin?
    public var mentions: [Mention]
    public var createdAt: Date
    public var editedAt: Date?
    /// How many times the text changed; the versions are in the edit history.
    public var editCount: Int
    public var deletedAt: Date?
    public var reactions: [ReactionSummary]
    public var pinned: Bool
    /// The sender's idempotency key (only shown to the sender's own clients would be nicer; it is
    /// harmless to others because it only deduplicates within the sender's own sends).
    public var clientMessageID: String?
    /// Buttons shown under the message (BotX `bubble`), rows of buttons.
    public var bubble: [[BotButton]]?
    /// Buttons shown under the input field while this message is the latest (BotX `keyboard`).
    public var keyboard: [[BotButton]]?
    /// Opaque data the sending bot attached; it comes back to the bot with a button press.
    public var metadata: JSONValue?
    /// When set, only these members (and the sender) see the message.
    public var recipients: [UserID]?
    /// Files carried with the message (inline today; see ``Attachment``).
    public var attachments: [Attachment]?
    /// BotX `silent_response`: the user's next messages are not kept in the visible history.
    public var silentResponse: Bool?
    /// Sent in stealth mode (BotX `stealth_mode`): subject to the chat's stealth settings.
    public var stealth: Bool?

    public init(
        id: MessageID, chatID: ChatID, chatSeq: Int64, senderID: UserID, text: String, replyTo: MessageID? = nil,
        forwardedFrom: ForwardOrigin? = nil, mentions: [Mention] = [], createdAt: Date, editedAt: Date? = nil,
        editCount: Int = 0, deletedAt: Date? = nil, reactions: [ReactionSummary] = [], pinned: Bool = false,
        clientMessageID: String? = nil
    ) {
        self.id = id
        self.chatID = chatID
        self.chatSeq = chatSeq
        self.senderID = senderID
        self.text = text
        self.replyTo = replyTo
        self.forwardedFrom = forwardedFrom
        self.mentions = mentions
        self.createdAt = createdAt
        self.editedAt = editedAt
        self.editCount = editCount
        self.deletedAt = deletedAt
        self.reactions = reactions
        self.pinned = pinned
        self.clientMessageID = clientMessageID
    }

    public var isDeleted: Bool { deletedAt != nil }

    /// Whether `user` may see the message: everyone unless it names recipients.
    public func isVisible(to user: UserID) -> Bool {
        guard let recipients else { return true }
        return user == senderID || recipients.contains(user)
    }

    /// The optional structure beyond text, as one value (stored as one JSON column).
    public var extras: MessageExtras {
        get {
            MessageExtras(
                bubble: bubble, keyboard: keyboard, metadata: metadata, recipients: recipients, attachments: attachments,
                silentResponse: silentResponse, stealth: stealth)
        }
        set {
            bubble = newValue.bubble
            keyboard = newValue.keyboard
            metadata = newValue.metadata
            recipients = newValue.recipients
            attachments = newValue.attachments
            silentResponse = newValue.silentResponse
            stealth = newValue.stealth
        }
    }
}

/// Where a forwarded message came from; kept even if the origin is later deleted.
public struct ForwardOrigin: Hashable, Sendable, Codable {
    public var messageID: MessageID
    public var chatID: ChatID
    public var senderID: UserID
    public var sentAt: Date

    public init(messageID: MessageID, chatID: ChatID, senderID: UserID, sentAt: Date) {
        self.messageID = messageID
        self.chatID = chatID
        self.senderID = senderID
        self.sentAt = sentAt
    }
}

/// A mention in a message: one user, or everyone in the chat.
public enum Mention: Hashable, Sendable, Codable {
    case user(UserID)
    case all

    private enum CodingKeys: String, CodingKey { case kind, userID }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case "all": self = .all
        case "user": self = .user(try container.decode(UserID.self, forKey: .userID))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: container, debugDescription: "unknown mention kind \(other.prefix(32))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .all: try container.encode("all", forKey: .kind)
        case .user(let id):
            try container.encode("user", forKey: .kind)
            try container.encode(id, forKey: .userID)
        }
    }
}

/// One emoji's reactions on a message.
public struct ReactionSummary: Hashable, Sendable, Codable {
    public var emoji: String
    public var count: Int
    public var users: [UserID]

    public init(emoji: String, count: Int, users: [UserID]) {
        self.emoji = emoji
        self.count = count
        self.users = users
    }
}

/// One earlier version of a message's text.
public struct MessageEdit: Hashable, Sendable, Codable {
    /// 0 is the original text, 1 the first edit, and so on.
    public var version: Int
    public var text: String
    public var editedAt: Date

    public init(version: Int, text: String, editedAt: Date) {
        self.version = version
        self.text = text
        self.editedAt = editedAt
    }
}
