import Foundation
import VestnikModel

/// A delivery to a bot, in domain terms. Core enqueues jobs in the transaction of the change that
/// causes them; the BotX transport turns them into wire payloads when it delivers, so Core never
/// sees BotX JSON.
///
/// A struct with one optional payload per kind (rather than an enum with associated values) so
/// its stored JSON is plain and stable.
package struct BotJob: Sendable, Hashable, Codable {
    package enum Kind: String, Sendable, Hashable, Codable {
        /// A user message or button press → `POST {url}/command` (`command_type: user`).
        case command
        /// A system event → `POST {url}/command` (`command_type: system`).
        case system
        /// The result of an async bot method → `POST {url}/notification/callback`.
        case callback
    }

    package var kind: Kind
    package var command: BotCommandJob?
    package var system: BotSystemJob?
    package var callback: BotCallbackJob?

    package static func command(_ job: BotCommandJob) -> BotJob { BotJob(kind: .command, command: job) }
    package static func system(_ job: BotSystemJob) -> BotJob { BotJob(kind: .system, system: job) }
    package static func callback(_ job: BotCallbackJob) -> BotJob { BotJob(kind: .callback, callback: job) }
}

/// Who sent a command and where, as the bot is told.
package struct BotSender: Sendable, Hashable, Codable {
    package var userID: UserID
    package var login: String
    package var name: String
    package var isAdmin: Bool
    package var isCreator: Bool

    package init(userID: UserID, login: String, name: String, isAdmin: Bool, isCreator: Bool) {
        self.userID = userID
        self.login = login
        self.name = name
        self.isAdmin = isAdmin
        self.isCreator = isCreator
    }
}

/// A user message or a button press for a bot.
package struct BotCommandJob: Sendable, Hashable, Codable {
    /// The message's id (BotX `sync_id`); for a silent button press, a fresh id.
    package var syncID: MessageID
    package var chatID: ChatID
    package var chatKind: ChatKind
    package var sender: BotSender
    package var body: String
    /// Button data (empty object for plain messages).
    package var data: JSONValue
    /// The metadata of the bot message whose button was pressed.
    package var metadata: JSONValue
    /// The bot message whose button was pressed.
    package var sourceSyncID: MessageID?
    package var attachments: [Attachment]

    package init(
        syncID: MessageID, chatID: ChatID, chatKind: ChatKind, sender: BotSender, body: String, data: JSONValue, metadata: JSONValue,
        sourceSyncID: MessageID?, attachments: [Attachment]
    ) {
        self.syncID = syncID
        self.chatID = chatID
        self.chatKind = chatKind
        self.sender = sender
        self.body = body
        self.data = data
        self.metadata = metadata
        self.sourceSyncID = sourceSyncID
        self.attachments = attachments
    }
}

/// A system event for a bot (BotX `system:<name>`).
package struct BotSystemJob: Sendable, Hashable, Codable {
    package enum Name: String, Sendable, Hashable, Codable {
        case chatCreated = "chat_created"
        case addedToChat = "added_to_chat"
        case deletedFromChat = "deleted_from_chat"
        case leftFromChat = "left_from_chat"
        case userJoinedToChat = "user_joined_to_chat"
        case eventEdit = "event_edit"
        case eventDeleted = "event_deleted"
        case chatDeletedByUser = "chat_deleted_by_user"
        case internalBotNotification = "internal_bot_notification"
    }

    package var name: Name
    package var chatID: ChatID
    package var chatKind: ChatKind
    /// The acting user (the editor, the sender of an internal notification, …).
    package var userID: UserID?
    /// Added, removed or left members; for `chat_created`, every member.
    package var members: [BotMemberInfo] = []
    package var chatTitle: String?
    package var creator: UserID?
    package var messageIDs: [MessageID] = []
    package var body: String?
    package var at: Date?
    /// Internal notification `data` and `opts`.
    package var data: JSONValue?
    package var opts: JSONValue?
}

/// A chat member as system events describe it.
package struct BotMemberInfo: Sendable, Hashable, Codable {
    package var userID: UserID
    package var name: String?
    package var kind: UserKind
    package var isAdmin: Bool
}

/// The outcome of an async bot method, sent back to the bot by its sync id.
package struct BotCallbackJob: Sendable, Hashable, Codable {
    package var syncID: MessageID
    /// A ``VestnikError`` code when the method failed; the transport maps it to a BotX reason.
    package var errorCode: String?
    package var errorMessage: String?
    package var chatID: ChatID?
}
