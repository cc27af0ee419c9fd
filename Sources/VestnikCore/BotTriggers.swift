import Foundation
import VestnikModel

/// What bots are told about changes made by users. Called by the chat and message services inside
/// the change's own transaction, so a delivery exists exactly when the change committed.
///
/// Each call does one indexed query (bot members of the chat); chats without bots cost no more.
package enum BotTriggers {
    /// A user's message: a `command` for every enabled bot member that wants it (`allowed_data`),
    /// that can see it (recipients), and that did not send it.
    static func messageCreated(_ message: Message, chat: Chat, member: ChatMember, tx: any StoreWriter, log: EventLog) async throws {
        let bots = try await tx.botMembers(of: chat.id).filter { $0.enabled && $0.id != message.senderID }
        // `users(_:)`, not `user(_:)`: inside a write the latter locks the row, and a send has
        // taken the log's counter row by now; a user-row lock after it inverts the lock order
        // (chats and users before the log) and can deadlock with a block or password reset.
        guard !bots.isEmpty, let sender = try await tx.users([message.senderID]).first, sender.kind == .user else { return }
        for bot in bots where receives(message.text, bot) && message.isVisible(to: bot.id) {
            let job = BotCommandJob(
                syncID: message.id, chatID: chat.id, chatKind: chat.kind,
                sender: BotSender(
                    userID: sender.id, login: sender.login, name: sender.displayName, isAdmin: member.role == .admin,
                    isCreator: chat.createdBy == sender.id),
                body: message.text, data: .emptyObject, metadata: .emptyObject, sourceSyncID: nil, attachments: message.attachments ?? [])
            try await log.enqueue(.command(job), for: bot.id, in: tx)
        }
    }

    /// A membership or message change described as a system event, for every enabled bot member
    /// other than `actor` that `wants` it. `extraBots` are bots no longer (or not yet) members
    /// that must hear it.
    static func system(
        _ job: BotSystemJob, chat: ChatID, except actor: UserID?, extraBots: [BotRecord] = [], tx: any StoreWriter, log: EventLog,
        wants: (BotRecord) -> Bool = { _ in true }
    ) async throws {
        var bots = try await tx.botMembers(of: chat)
        for extra in extraBots where !bots.contains(where: { $0.id == extra.id }) { bots.append(extra) }
        for bot in bots where bot.enabled && bot.id != actor && wants(bot) {
            try await log.enqueue(.system(job), for: bot.id, in: tx)
        }
    }

    /// Whether a bot is shown a user's text (a message, or its edit): every text with
    /// `allowed_data: all`, only commands (`/…`) otherwise.
    static func receives(_ text: String, _ bot: BotRecord) -> Bool {
        bot.allowedData == .all || text.hasPrefix("/")
    }

    /// Members as system events list them (name and kind).
    static func memberInfo(_ members: [ChatMember], tx: any StoreReader) async throws -> [BotMemberInfo] {
        let users = try await tx.users(members.map(\.userID))
        let byID = Dictionary(users.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        return members.map { member in
            BotMemberInfo(
                userID: member.userID, name: byID[member.userID]?.displayName, kind: byID[member.userID]?.kind ?? .user,
                isAdmin: member.role == .admin)
        }
    }
}
