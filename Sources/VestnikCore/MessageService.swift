import Foundation
import Logging
import VestnikModel

/// What a client asks to send.
package struct OutgoingMessage: Sendable {
    package var text: String?
    package var clientMessageID: String?
    package var replyTo: MessageID?
    package var forwardOf: MessageID?
    package var mentions: [Mention]

    package init(text: String?, clientMessageID: String? = nil, replyTo: MessageID? = nil, forwardOf: MessageID? = nil, mentions: [Mention] = []) {
        self.text = text
        self.clientMessageID = clientMessageID
        self.replyTo = replyTo
        self.forwardOf = forwardOf
        self.mentions = mentions
    }
}

/// A page of history around an anchor.
package struct HistoryPage: Sendable {
    package var messages: [Message]
    package var hasMoreBefore: Bool
    package var hasMoreAfter: Bool
}

/// Where a history page starts.
package enum HistoryAnchor: Sendable {
    case latest
    case before(MessageID)
    case after(MessageID)
    case around(MessageID)
}

/// Messages: send, edit, delete, reactions, pins, reading and history.
package struct MessageService: Sendable {
    private let context: CoreContext

    package init(context: CoreContext) { self.context = context }

    /// Sends a message. With a `clientMessageID` already used by this sender, returns the
    /// original message and `created == false`; nothing new is stored.
    /// - Parameter notifyBots: false for a button press shown as a message (the press itself is
    ///   the bot's delivery).
    package func send(
        _ outgoing: OutgoingMessage, to chatID: ChatID, as caller: AuthenticatedSession, notifyBots: Bool = true
    ) async throws -> (Message, created: Bool) {
        let me = caller.userID
        if let clientID = outgoing.clientMessageID {
            guard !clientID.isEmpty, clientID.utf8.count <= context.limits.maxClientMessageIDLength,
                !clientID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw VestnikError.invalid("client_message_id must be 1–\(context.limits.maxClientMessageIDLength) bytes.")
            }
        }
        var text = ""
        if outgoing.forwardOf == nil {
            text = try validateText(outgoing.text ?? "")
        }
        let limits = context.limits
        let finalText = text
        do {
            return try await context.write(intent: .send(chat: chatID, sender: me, clientMessageID: outgoing.clientMessageID)) { tx, log in
                guard let sending = try await tx.sendingContext(chat: chatID, sender: me, clientMessageID: outgoing.clientMessageID) else {
                    throw VestnikError.chatNotFound
                }
                var chat = sending.chat
                let member = sending.member
                if let existing = sending.existing {
                    return (try await Self.withState(existing, in: tx), false)
                }
                guard chat.kind != .channel || member.role == .admin else {
                    throw VestnikError(.channelReadOnly, "Only admins post in a channel.")
                }
                if let replyTo = outgoing.replyTo {
                    // A message addressed to other members only is as good as absent for the caller.
                    guard let original = try await tx.message(replyTo), original.chatID == chatID, original.isVisible(to: me) else {
                        throw VestnikError.invalid("reply_to must be a message in the same chat.")
                    }
                }
                var messageText = finalText
                var origin: ForwardOrigin?
                if let forwardOf = outgoing.forwardOf {
                    guard let original = try await tx.message(forwardOf), original.isVisible(to: me),
                        try await tx.member(me, of: original.chatID) != nil
                    else {
                        throw VestnikError.messageNotFound
                    }
                    guard !original.isDeleted else { throw VestnikError(.messageDeleted, "A deleted message cannot be forwarded.") }
                    messageText = original.text
                    origin = original.forwardedFrom
                        ?? ForwardOrigin(messageID: original.id, chatID: original.chatID, senderID: original.senderID, sentAt: original.createdAt)
                }
                let memberIDs = sending.memberIDs
                let now = Date()
                let mentions = try await Self.resolveMentions(
                    in: messageText, explicit: outgoing.mentions, members: memberIDs, tx: tx, limit: limits.maxMembersPerRequest)
                let message = try await Self.append(
                    Message(
                        id: .timeOrdered(at: now), chatID: chatID, chatSeq: 0, senderID: me, text: messageText, replyTo: outgoing.replyTo,
                        forwardedFrom: origin, mentions: mentions, createdAt: now, clientMessageID: outgoing.clientMessageID),
                    to: &chat, by: member, members: memberIDs, tx: tx, log: log)
                if notifyBots, sending.mayHaveBots { try await BotTriggers.messageCreated(message, chat: chat, member: member, tx: tx, log: log) }
                return (message, true)
            }
        } catch let error as VestnikError where error.isDuplicate(of: "client_message_id") {
            // Two concurrent retries raced; the first one won. Return its message.
            guard let clientID = outgoing.clientMessageID,
                let existing = try await context.read({ try await $0.message(in: chatID, sender: me, clientMessageID: clientID) })
            else { throw VestnikError(.conflict, "The message could not be sent; retry.") }
            return (existing, false)
        }
    }

    /// Replaces the text of the caller's own message; every version is kept.
    package func edit(_ messageID: MessageID, text rawText: String, as caller: AuthenticatedSession) async throws -> Message {
        let text = try validateText(rawText)
        let limits = context.limits
        return try await context.write { tx, log in
            let (message, _, _) = try await Self.messageToChange(messageID, for: caller.userID, in: tx)
            guard message.senderID == caller.userID else {
                throw VestnikError(.notMessageAuthor, "Only the author can edit a message.")
            }
            guard !message.isDeleted else { throw VestnikError(.messageDeleted, "A deleted message cannot be edited.") }
            guard message.text != text else { return message }
            let mentions = try await Self.resolveMentions(
                in: text, explicit: [], members: try await tx.memberIDs(of: message.chatID), tx: tx, limit: limits.maxMembersPerRequest)
            guard try await tx.recordEdit(of: messageID, text: text, mentions: mentions, version: message.editCount + 1, at: Date.millisecondNow())
            else { throw VestnikError(.messageDeleted, "A deleted message cannot be edited.") }
            guard let updated = try await tx.message(messageID) else { throw VestnikError.messageNotFound }
            let full = try await Self.withState(updated, in: tx)
            try await log.append(.messageEdited(full), to: Self.audience(of: full, members: try await tx.memberIDs(of: message.chatID)), in: tx)
            if let chat = try await tx.chat(message.chatID) {
                // The new text goes only to bots that would have been sent it as a message: a
                // commands-only bot never sees an edit to plain text.
                try await BotTriggers.system(
                    BotSystemJob(name: .eventEdit, chatID: chat.id, chatKind: chat.kind, userID: caller.userID, messageIDs: [messageID], body: text),
                    chat: chat.id, except: caller.userID, tx: tx, log: log,
                    wants: { BotTriggers.receives(text, $0) && full.isVisible(to: $0.id) })
            }
            return full
        }
    }

    /// Deletes a message for everyone, leaving a tombstone. The author or a chat admin may.
    package func delete(_ messageID: MessageID, as caller: AuthenticatedSession) async throws -> Message {
        try await context.write { tx, log in
            let (message, chat, member) = try await Self.messageToChange(messageID, for: caller.userID, in: tx)
            let isChatAdmin = member.role == .admin && (chat.kind == .group || chat.kind == .channel)
            guard message.senderID == caller.userID || isChatAdmin else {
                throw VestnikError(.notMessageAuthor, "Only the author or a chat admin can delete a message.")
            }
            guard !message.isDeleted else { return message }
            try await Self.tombstone(message, in: tx)
            guard let updated = try await tx.message(messageID) else { throw VestnikError.messageNotFound }
            let full = try await Self.withState(updated, in: tx)
            try await log.append(.messageDeleted(full), to: Self.audience(of: full, members: try await tx.memberIDs(of: message.chatID)), in: tx)
            try await BotTriggers.system(
                BotSystemJob(
                    name: .eventDeleted, chatID: chat.id, chatKind: chat.kind, userID: caller.userID, messageIDs: [messageID],
                    at: full.deletedAt),
                chat: chat.id, except: caller.userID, tx: tx, log: log)
            return full
        }
    }

    /// Adds or removes the caller's reaction; returns the message's reactions after the change.
    package func react(_ emoji: String, on messageID: MessageID, add: Bool, as caller: AuthenticatedSession) async throws -> [ReactionSummary] {
        let emoji = emoji.trimmingCharacters(in: .whitespacesAndNewlines)
        guard Self.isEmoji(emoji, maxBytes: context.limits.maxEmojiBytes) else { throw VestnikError.invalid("A reaction is one emoji.") }
        return try await context.write { tx, log in
            let (message, _, _) = try await Self.messageToChange(messageID, for: caller.userID, in: tx)
            guard !message.isDeleted else { throw VestnikError(.messageDeleted, "A deleted message cannot get reactions.") }
            let changed =
                add
                ? try await tx.addReaction(emoji, by: caller.userID, to: messageID, at: Date.millisecondNow())
                : try await tx.removeReaction(emoji, by: caller.userID, from: messageID)
            let reactions = try await tx.reactions(of: messageID)
            if changed {
                try await log.append(
                    .reactionsChanged(chatID: message.chatID, messageID: messageID, reactions: reactions),
                    to: Self.audience(of: message, members: try await tx.memberIDs(of: message.chatID)), in: tx)
            }
            return reactions
        }
    }

    /// Pins or unpins a message: chat admins in groups and channels, either member in personal
    /// and notes chats.
    package func setPinned(_ pinned: Bool, message messageID: MessageID, as caller: AuthenticatedSession) async throws {
        try await context.write { tx, log in
            let (message, chat, member) = try await Self.messageToChange(messageID, for: caller.userID, in: tx)
            if chat.kind == .group || chat.kind == .channel, member.role != .admin {
                throw VestnikError(.notChatAdmin, "Only chat admins can pin messages.")
            }
            guard !message.isDeleted || !pinned else { throw VestnikError(.messageDeleted, "A deleted message cannot be pinned.") }
            guard message.pinned != pinned else { return }
            try await tx.setPinned(pinned, message: messageID, at: Date.millisecondNow())
            let event: ServerEvent =
                pinned
                ? .messagePinned(chatID: chat.id, messageID: messageID, by: caller.userID)
                : .messageUnpinned(chatID: chat.id, messageID: messageID, by: caller.userID)
            try await log.append(event, to: Self.audience(of: message, members: try await tx.memberIDs(of: chat.id)), in: tx)
        }
    }

    /// Moves the caller's read position forward to `messageID` (never backwards).
    /// - Returns: the read position and the unread count after it.
    package func markRead(upTo messageID: MessageID, in chatID: ChatID, as caller: AuthenticatedSession) async throws -> (Int64, Int) {
        try await context.write { tx, log in
            let (message, chat, member) = try await Self.visibleMessage(messageID, for: caller.userID, in: tx)
            guard chat.id == chatID else { throw VestnikError.messageNotFound }
            var readSeq = member.readSeq
            if message.chatSeq > member.readSeq {
                readSeq = message.chatSeq
                try await tx.setReadSeq(readSeq, of: caller.userID, in: chat.id)
                // In a channel, receipts go only to the reader's own devices: thousands of readers
                // would otherwise flood every member.
                let recipients = chat.kind == .channel ? [caller.userID] : try await tx.memberIDs(of: chat.id)
                try await log.append(.receiptUpdated(chatID: chat.id, userID: caller.userID, readSeq: readSeq), to: recipients, in: tx)
            }
            let unread = try await tx.unreadCount(in: chat.id, for: caller.userID, after: readSeq)
            return (readSeq, unread)
        }
    }

    /// Members (other than the author) who have read the message.
    package func readBy(_ messageID: MessageID, as caller: AuthenticatedSession) async throws -> [UserID] {
        try await context.read { reader in
            let (message, _, _) = try await Self.visibleMessage(messageID, for: caller.userID, in: reader)
            return try await reader.readers(of: message.chatID, atLeast: message.chatSeq).filter { $0 != message.senderID }
        }
    }

    /// One message.
    package func message(_ messageID: MessageID, as caller: AuthenticatedSession) async throws -> Message {
        try await context.read { reader in
            let (message, _, _) = try await Self.visibleMessage(messageID, for: caller.userID, in: reader)
            return try await Self.withState(message, in: reader)
        }
    }

    /// Every version of a message's text, the original first.
    package func editHistory(_ messageID: MessageID, as caller: AuthenticatedSession) async throws -> [MessageEdit] {
        try await context.read { reader in
            let (message, _, _) = try await Self.visibleMessage(messageID, for: caller.userID, in: reader)
            guard !message.isDeleted else { return [] }
            return try await reader.edits(of: messageID)
        }
    }

    /// Pinned messages of a chat, oldest first.
    package func pins(in chatID: ChatID, as caller: AuthenticatedSession) async throws -> [Message] {
        try await context.read { reader in
            _ = try await ChatService.membership(chatID, of: caller.userID, in: reader)
            return try await reader.pinnedMessages(in: chatID).filter { $0.isVisible(to: caller.userID) }
        }
    }

    /// A page of history, oldest first, around an anchor.
    ///
    /// Only messages the caller may see are counted (the store filters bot `recipients`), so a
    /// page is full whenever history holds enough visible messages, and `has_more_*` mean
    /// visible ones too.
    package func history(in chatID: ChatID, anchor: HistoryAnchor, limit rawLimit: Int, as caller: AuthenticatedSession) async throws -> HistoryPage {
        let limit = max(1, min(rawLimit, context.limits.maxPageSize))
        let me = caller.userID
        return try await context.read { reader in
            let (chat, _) = try await ChatService.membership(chatID, of: me, in: reader)
            func anchorSeq(_ id: MessageID) async throws -> Int64 {
                guard let message = try await reader.message(id), message.chatID == chatID, message.isVisible(to: me) else {
                    throw VestnikError.messageNotFound
                }
                return message.chatSeq
            }
            func visible(_ direction: HistoryDirection, _ count: Int) async throws -> [Message] {
                try await reader.messages(in: chatID, direction, limit: count, visibleTo: me)
            }
            switch anchor {
            case .latest:
                let page = try await visible(.latest, limit + 1)
                return HistoryPage(messages: Array(page.suffix(limit)), hasMoreBefore: page.count > limit, hasMoreAfter: false)
            case .before(let id):
                let seq = try await anchorSeq(id)
                let page = try await visible(.before(seq), limit + 1)
                return HistoryPage(messages: Array(page.suffix(limit)), hasMoreBefore: page.count > limit, hasMoreAfter: seq <= chat.lastMessageSeq)
            case .after(let id):
                let seq = try await anchorSeq(id)
                let page = try await visible(.after(seq), limit + 1)
                return HistoryPage(messages: Array(page.prefix(limit)), hasMoreBefore: true, hasMoreAfter: page.count > limit)
            case .around(let id):
                // The anchor itself is always included, with up to half the page before it.
                let seq = try await anchorSeq(id)
                let beforeCount = (limit - 1) / 2
                let fromAnchor = limit - beforeCount
                let before = beforeCount > 0 ? try await visible(.before(seq), beforeCount + 1) : []
                let after = try await visible(.after(seq - 1), fromAnchor + 1)
                return HistoryPage(
                    messages: Array(before.suffix(beforeCount)) + Array(after.prefix(fromAnchor)),
                    hasMoreBefore: beforeCount > 0 ? before.count > beforeCount : seq > 1, hasMoreAfter: after.count > fromAnchor)
            }
        }
    }

    /// Posts `text` as `member`'s plain message in `chat`, inside a write that has read (and so
    /// locked) `chat` and `member` already: the rules of ``send(_:to:as:notifyBots:)`` for plain
    /// text, without notifying bots. A button press shows its command this way, in the press's
    /// own transaction, so a press refused there leaves nothing in the chat.
    /// - Parameter chat: updated as ``append(_:to:by:members:tx:log:)`` updates it.
    func post(text raw: String, in chat: inout Chat, by member: ChatMember, tx: any StoreWriter, log: EventLog) async throws -> Message {
        let text = try checkPostable(raw, in: chat, by: member)
        let memberIDs = try await tx.memberIDs(of: chat.id)
        let mentions = try await Self.resolveMentions(in: text, explicit: [], members: memberIDs, tx: tx, limit: context.limits.maxMembersPerRequest)
        let now = Date()
        return try await Self.append(
            Message(
                id: .timeOrdered(at: now), chatID: chat.id, chatSeq: 0, senderID: member.userID, text: text, replyTo: nil, forwardedFrom: nil,
                mentions: mentions, createdAt: now, clientMessageID: nil),
            to: &chat, by: member, members: memberIDs, tx: tx, log: log)
    }

    /// The checks of ``post(text:in:by:tx:log:)`` that need no transaction, so a caller can refuse
    /// early, before its write (a write that throws makes its whole batch run again).
    /// - Returns: the text as it would be posted.
    func checkPostable(_ raw: String, in chat: Chat, by member: ChatMember) throws -> String {
        let text = try validateText(raw)
        guard chat.kind != .channel || member.role == .admin else { throw VestnikError(.channelReadOnly, "Only admins post in a channel.") }
        return text
    }

    // MARK: Helpers

    private func validateText(_ raw: String) throws -> String {
        // Keep the text exactly as typed (leading spaces can be meaningful, e.g. code), but an
        // all-whitespace message is empty. (Looks at scalars until the first non-whitespace one, instead
        // of building a trimmed copy of every message.)
        let whitespace = CharacterSet.whitespacesAndNewlines
        guard !raw.unicodeScalars.allSatisfy({ whitespace.contains($0) }) else {
            throw VestnikError.invalid("A message needs text.")
        }
        guard raw.utf8.count <= context.limits.maxMessageBytes else {
            throw VestnikError(.payloadTooLarge, "A message is at most \(context.limits.maxMessageBytes / 1024) KiB of text.")
        }
        guard !raw.utf8.contains(0) else {
            throw VestnikError.invalid("A message must not contain NUL characters.")
        }
        return raw
    }

    /// One emoji (possibly a ZWJ sequence, with modifiers, a flag or a keycap), nothing else.
    package static func isEmoji(_ text: String, maxBytes: Int) -> Bool {
        guard !text.isEmpty, text.utf8.count <= maxBytes, text.count == 1 else { return false }
        var hasPictograph = false
        for scalar in text.unicodeScalars {
            let properties = scalar.properties
            if properties.isEmojiPresentation || (properties.isEmoji && scalar.value >= 0x2100) || scalar.value == 0x20E3 || scalar.value == 0xFE0F
                || (0x1F1E6...0x1F1FF).contains(scalar.value)
            {
                hasPictograph = true
            } else if !(properties.isEmoji || properties.isEmojiModifier || scalar.value == 0x200D || (0xE0020...0xE007F).contains(scalar.value)) {
                return false
            }
        }
        return hasPictograph
    }

    /// The message with its chat and the caller's membership, or `message_not_found` when the
    /// caller is not in its chat.
    ///
    /// The chat and membership are read as ``ChatService/membership(_:of:in:)`` reads them: the
    /// membership is read again after the chat, whose row a write locks, so it reflects what a
    /// concurrent writer committed under that lock.
    static func visibleMessage(_ id: MessageID, for user: UserID, in reader: any StoreReader) async throws -> (Message, Chat, ChatMember) {
        guard let message = try await reader.message(id) else { throw VestnikError.messageNotFound }
        let (chat, member): (Chat, ChatMember)
        do {
            (chat, member) = try await ChatService.membership(message.chatID, of: user, in: reader)
        } catch let error as VestnikError where error.code == .chatNotFound {
            throw VestnikError.messageNotFound
        }
        guard message.isVisible(to: user) else { throw VestnikError.messageNotFound }
        return (message, chat, member)
    }

    /// ``visibleMessage(_:for:in:)`` for a write that changes the message or decides by its
    /// state (deleted, pinned, its edit count): the message is read again once the chat's row is
    /// locked, so a change another node committed meanwhile is seen (two edits would otherwise
    /// both take the same version number, two deletes log the deletion twice).
    static func messageToChange(_ id: MessageID, for user: UserID, in tx: any StoreWriter) async throws -> (Message, Chat, ChatMember) {
        let (_, chat, member) = try await visibleMessage(id, for: user, in: tx)
        guard let message = try await tx.message(id), message.isVisible(to: user) else { throw VestnikError.messageNotFound }
        return (message, chat, member)
    }

    /// Stores a new message in `chat` — users' and bots' alike — inside `tx`: takes the chat's
    /// next `chat_seq` and the time now, marks it read by its sender, and appends
    /// `message.created` for everyone who may see it. The one place a message is added.
    /// - Parameter draft: everything but `chatSeq` and `createdAt`, which are assigned here.
    static func append(
        _ draft: Message, to chat: inout Chat, by sender: ChatMember, members: [UserID], tx: any StoreWriter, log: EventLog
    ) async throws -> Message {
        let now = Date.millisecondNow()
        chat.lastMessageSeq += 1
        chat.lastActivityAt = now
        var message = draft
        message.chatSeq = chat.lastMessageSeq
        message.createdAt = now
        let updatedChat = chat
        let stored = message
        // Your own message is read by you.
        let reader = sender.readSeq < message.chatSeq ? sender.userID : nil
        try await log.append(.messageCreated(message), to: audience(of: message, members: members)) { entry in
            try await tx.insertMessage(stored, updating: updatedChat, readBy: reader, announcing: entry)
        }
        return message
    }

    /// Deletes a message for everyone. A message addressed to some members stays addressed to
    /// them as a tombstone, so others never learn it existed.
    static func tombstone(_ message: Message, in tx: any StoreWriter) async throws {
        try await tx.markDeleted(message.id, at: Date.millisecondNow(), keepingRecipients: message.recipients)
    }

    /// Who gets events about `message`: the chat's members, narrowed to its recipients if it has them.
    static func audience(of message: Message, members: [UserID]) -> [UserID] {
        guard message.recipients != nil else { return members }
        return members.filter { message.isVisible(to: $0) }
    }

    static func withState(_ message: Message, in reader: any StoreReader) async throws -> Message {
        // `StoreReader.message` already carries reactions and the pin flag; kept as a seam for
        // per-viewer state.
        message
    }

    /// `@login` words naming members, `@all`, plus explicitly named members.
    static func resolveMentions(in text: String, explicit: [Mention], members: [UserID], tx: any StoreReader, limit: Int) async throws -> [Mention] {
        // Most messages mention no one: skip building the member set and scanning the text
        // character by character (that showed in the send path's profile).
        if explicit.isEmpty, !text.utf8.contains(UInt8(ascii: "@")) { return [] }
        var result: [Mention] = []
        let memberSet = Set(members)
        func add(_ mention: Mention) {
            if !result.contains(mention), result.count < limit { result.append(mention) }
        }
        for mention in explicit {
            switch mention {
            case .all: add(.all)
            case .user(let id) where memberSet.contains(id): add(.user(id))
            case .user: continue
            }
        }
        var seen = Set<String>()
        let loginCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        let scalars = Array(text)
        var index = 0
        while index < scalars.count {
            if scalars[index] == "@", index == 0 || !(scalars[index - 1].isLetter || scalars[index - 1].isNumber) {
                var end = index + 1
                while end < scalars.count, loginCharacters.contains(Character(scalars[end].lowercased())) { end += 1 }
                var word = String(scalars[(index + 1)..<end]).lowercased()
                while word.hasSuffix(".") || word.hasSuffix("-") { word.removeLast() }
                if word == "all" {
                    add(.all)
                } else if word.count >= 2, seen.count < 50, seen.insert(word).inserted,
                    let user = try await tx.user(login: word), memberSet.contains(user.user.id)
                {
                    add(.user(user.user.id))
                }
                index = end
            } else {
                index += 1
            }
        }
        return result
    }
}
