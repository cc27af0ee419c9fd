import Foundation
import VestnikCore
import VestnikModel

/// The JSON the server sends to bots (Bot API v4) and the objects BotX methods return, built as
/// ``JSONValue`` so that every key pybotx requires is present, `null` included.
enum BotXPayloads {
    /// BotX `chat_type` of a Vestnik chat kind.
    static func chatType(_ kind: ChatKind) -> String {
        switch kind {
        case .personal, .notes: "chat"
        case .group: "group_chat"
        case .channel: "channel"
        }
    }

    /// BotX `user_kind`: people here are corporate accounts.
    static func userKind(_ kind: UserKind) -> String {
        switch kind {
        case .user: "cts_user"
        case .botx: "botx"
        }
    }

    static func string(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
    static func id<Tag>(_ value: Identifier<Tag>?) -> JSONValue { value.map { .string($0.description) } ?? .null }
    static func date(_ value: Date) -> JSONValue { .string(VestnikJSON.formatDate(value)) }

    /// `POST {url}/command` for a queued delivery; nil for callbacks.
    ///
    /// A system event's `sync_id` is the outbox row's id: stored with the job, so every retry of
    /// one delivery carries the same id and a bot can tell a retry from a new event.
    static func command(for record: BotJobRecord, host: String) -> JSONValue? {
        let job = record.job
        let bot = record.botID
        switch job.kind {
        case .command:
            guard let command = job.command else { return nil }
            return userCommand(command, bot: bot, host: host)
        case .system:
            guard let system = job.system else { return nil }
            return systemCommand(system, syncID: MessageID(record.id), bot: bot, host: host)
        case .callback:
            return nil
        }
    }

    static func userCommand(_ job: BotCommandJob, bot: UserID, host: String) -> JSONValue {
        .object([
            "sync_id": id(job.syncID),
            "source_sync_id": id(job.sourceSyncID),
            "bot_id": id(bot),
            "proto_version": .int(4),
            "command": .object([
                "body": .string(job.body), "command_type": .string("user"), "data": job.data, "metadata": job.metadata,
            ]),
            "attachments": .array(job.attachments.map(attachment)),
            "async_files": .array([]),
            "entities": .array([]),
            "from": .object([
                "user_huid": id(job.sender.userID), "user_udid": .null, "group_chat_id": id(job.chatID),
                "chat_type": .string(chatType(job.chatKind)), "host": .string(host), "ad_login": .string(job.sender.login),
                "ad_domain": .null, "username": .string(job.sender.name), "is_admin": .bool(job.sender.isAdmin),
                "is_creator": .bool(job.sender.isCreator), "platform": .null, "platform_package_id": .null, "app_version": .null,
                "device": .null, "device_software": .null, "manufacturer": .null, "locale": .null, "device_meta": .null,
            ]),
        ])
    }

    /// An inline attachment in the form pybotx reads (`content` is a data URL).
    static func attachment(_ a: Attachment) -> JSONValue {
        var data: [String: JSONValue] = ["content": .string("data:\(a.mimeType);base64,\(a.data ?? "")"), "file_name": .string(a.fileName)]
        if a.type == "video" || a.type == "voice" { data["duration"] = .int(0) }
        return .object(["type": .string(a.type), "data": .object(data)])
    }

    /// - Parameter syncID: the delivery's stable id (`event_edit` carries the edited message's).
    static func systemCommand(_ job: BotSystemJob, syncID: MessageID, bot: UserID, host: String) -> JSONValue {
        var data: [String: JSONValue] = [:]
        var from: [String: JSONValue] = [
            "host": .string(host), "group_chat_id": id(job.chatID), "chat_type": .string(chatType(job.chatKind)), "user_huid": id(job.userID),
        ]
        let memberIDs = JSONValue.array(job.members.map { id($0.userID) })
        switch job.name {
        case .chatCreated:
            data = [
                "chat_type": .string(chatType(job.chatKind)), "creator": id(job.creator), "group_chat_id": id(job.chatID),
                "name": .string(job.chatTitle ?? ""),
                "members": .array(
                    job.members.map {
                        .object([
                            "admin": .bool($0.isAdmin), "huid": id($0.userID), "name": string($0.name), "user_kind": .string(userKind($0.kind)),
                        ])
                    }),
            ]
        case .addedToChat, .userJoinedToChat: data = ["added_members": memberIDs]
        case .deletedFromChat: data = ["deleted_members": memberIDs]
        case .leftFromChat: data = ["left_members": memberIDs]
        case .eventEdit: data = ["body": string(job.body)]
        case .eventDeleted:
            data = [
                "deleted_at": date(job.at ?? Date()), "group_chat_id": id(job.chatID), "sync_ids": .array(job.messageIDs.map { id($0) }),
                "meta": .null,
            ]
            from = ["host": .string(host)]
        case .chatDeletedByUser:
            data = ["user_huid": id(job.userID), "group_chat_id": id(job.chatID)]
            from = ["host": .string(host)]
        case .internalBotNotification:
            data = ["data": job.data ?? .emptyObject, "opts": job.opts ?? .emptyObject]
        }
        return .object([
            "sync_id": id(job.name == .eventEdit ? job.messageIDs.first ?? syncID : syncID),
            "source_sync_id": .null,
            "bot_id": id(bot),
            "proto_version": .int(4),
            "command": .object([
                "body": .string("system:\(job.name.rawValue)"), "command_type": .string("system"), "data": .object(data), "metadata": .emptyObject,
            ]),
            "attachments": .array([]),
            "async_files": .array([]),
            "entities": .array([]),
            "from": .object(from),
        ])
    }

    /// `POST {url}/notification/callback`.
    static func callback(_ job: BotCallbackJob) -> JSONValue {
        guard let code = job.errorCode else {
            return .object(["sync_id": id(job.syncID), "status": .string("ok"), "result": .emptyObject])
        }
        let failure = BotXErrors.failure(code: code, message: job.errorMessage ?? "", chatID: job.chatID)
        return .object([
            "sync_id": id(job.syncID), "status": .string("error"), "reason": .string(failure.reason), "errors": .array([]),
            "error_data": .object(failure.errorData),
        ])
    }

    /// The chat object of C7 and C10.
    static func chat(_ details: ChatDetailsView, users: [User]) -> JSONValue {
        let kinds = Dictionary(users.map { ($0.id, $0.kind) }, uniquingKeysWith: { a, _ in a })
        let chat = details.chat
        return .object([
            "chat_type": .string(chatType(chat.kind)), "creator": id(chat.createdBy),
            "description": chat.description.isEmpty ? .null : .string(chat.description), "group_chat_id": id(chat.id),
            "inserted_at": date(chat.createdAt), "updated_at": date(chat.lastActivityAt),
            "members": .array(
                details.members.map {
                    .object([
                        "admin": .bool($0.role == .admin), "user_huid": id($0.userID), "user_kind": .string(userKind(kinds[$0.userID] ?? .user)),
                    ])
                }),
            "name": .string(chat.title.isEmpty ? "Personal chat" : chat.title), "shared_history": .bool(false),
        ])
    }

    /// The user object of C11–C13.
    static func user(_ user: User) -> JSONValue {
        .object([
            "user_huid": id(user.id), "name": .string(user.displayName), "user_kind": .string(userKind(user.kind)),
            "ad_login": .string(user.login), "ad_domain": .null, "emails": .array(user.email.map { [.string($0)] } ?? []),
            "company": .null, "company_position": string(user.position), "department": string(user.department), "other_id": .null,
            "active": .bool(!user.isBlocked), "created_at": date(user.createdAt),
        ])
    }
}
