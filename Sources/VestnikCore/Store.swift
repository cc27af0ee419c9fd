import Crypto
import Foundation
import VestnikModel

/// The persistence port. Adapters (SQLite, later PostgreSQL) implement it; Core never sees SQL.
///
/// All changes go through ``write(_:)``: one atomic transaction, in which events are appended to
/// the ordered log together with the change they describe. Log positions are assigned so that
/// commit order equals position order (the adapter serializes the position counter inside the
/// transaction), which is what lets a reader trust "everything after N".
package protocol Store: Sendable {
    /// Runs `body` in a read snapshot.
    func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T
    /// Runs `body` in one atomic, durable write transaction; rolls back if it throws. `body` may
    /// run more than once (its transaction retried, see ``GroupCommit``); only the last run counts.
    /// - Parameter intent: what `body` is about to do, if it is a kind an adapter may prepare
    ///   for a whole batch of writes at once (see ``WriteIntent``); nil for anything else.
    func write<T: Sendable>(intent: WriteIntent?, _ body: @escaping @Sendable (any StoreWriter) async throws -> T) async throws -> T
    /// Durable events with positions in `(after, through]`, in order, with their recipients.
    /// Used by the fan-out to fill gaps and to pick up writes made by other processes.
    func committedEvents(after: EventSeq, through: EventSeq, limit: Int) async throws -> [CommittedEvent]
    /// The newest committed position.
    func headSeq() async throws -> EventSeq
    /// The session a token hash names, and whether its user is blocked: what every authenticated
    /// request asks first, so an adapter may answer it in one statement.
    func authenticationRecord(tokenHash: [UInt8]) async throws -> AuthenticationRecord?

    // Login attempts (decision 0017). Each call is atomic by itself and runs outside any write
    // batch, so a key's row is locked for one statement, never while other writes wait in a
    // batch, and never together with another row. `now` nil means the store's clock
    // (PostgreSQL: the database server's, which every node shares).

    /// Counts an attempt under `key` unless its limit is reached, in one step, so that nodes
    /// counting the same key at once cannot both slip under the limit.
    func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Date?) async throws -> AttemptCount
    /// Gives back one attempt counted under `key` (it turned out not to count), by what its count
    /// answered: nothing when that attempt's share was spent already, so a late give-back cannot
    /// cancel an attempt counted after it.
    func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Date, at now: Date?) async throws
    /// Forgets every attempt counted under `key`.
    func forgetAttempts(under key: AttemptKey) async throws
    /// Deletes up to `limit` keys whose counted attempts were all spent before `now`; returns
    /// how many (call again while it returns `limit`).
    func pruneAttempts(before now: Date?, limit: Int) async throws -> Int
    /// How this process's writes were batched so far.
    var writeStatistics: WriteBatchStatistics { get }
}

/// A session found by its token hash, with the one fact about its user that authentication needs.
package struct AuthenticationRecord: Sendable, Hashable {
    package var session: SessionRecord
    /// True also when the user row is gone.
    package var userBlocked: Bool

    package init(session: SessionRecord, userBlocked: Bool) {
        self.session = session
        self.userBlocked = userBlocked
    }
}

extension Store {
    /// A store that does not batch reports nothing.
    package var writeStatistics: WriteBatchStatistics { WriteBatchStatistics() }

    /// A write without an announced intent.
    package func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) async throws -> T) async throws -> T {
        try await write(intent: nil, body)
    }

    package func authenticationRecord(tokenHash: [UInt8]) async throws -> AuthenticationRecord? {
        try await read { reader in
            guard let record = try await reader.session(tokenHash: tokenHash) else { return nil }
            let blocked = try await reader.user(record.session.userID)?.user.isBlocked ?? true
            return AuthenticationRecord(session: record, userBlocked: blocked)
        }
    }
}

/// What a write transaction's body is about to do, announced before it runs.
///
/// Why: an adapter that pays a network round trip per statement (PostgreSQL) can then answer
/// the reads of a whole batch of concurrent writes (``GroupCommit``) in one statement, and hold
/// their inserts back to write them together (docs/decisions/0011-postgres-batched-sends.md).
/// An intent is a hint, never a promise: the body still makes every call, and an adapter may
/// ignore intents altogether (SQLite does; its statements cost no round trip).
package enum WriteIntent: Sendable, Hashable {
    /// The body asks ``StoreReader/sendingContext(chat:sender:clientMessageID:)`` with these
    /// arguments and, if the send goes ahead, stores the message with
    /// ``StoreWriter/insertMessage(_:updating:readBy:announcing:)``.
    case send(chat: ChatID, sender: UserID, clientMessageID: String?)
}

/// What a send needs to know about its chat, read inside the send's write transaction.
package struct SendingContext: Sendable, Hashable {
    /// The chat, locked for the rest of the transaction where the adapter locks rows.
    package var chat: Chat
    /// The sender's membership.
    package var member: ChatMember
    /// Every member, read after the chat was locked (so a member added concurrently is included).
    package var memberIDs: [UserID]
    /// The sender's earlier message with the same client message id: the send is a retry.
    package var existing: Message?
    /// False only when the chat is known to have no bot members, so the send need not look for
    /// bots to notify.
    package var mayHaveBots: Bool

    package init(chat: Chat, member: ChatMember, memberIDs: [UserID], existing: Message?, mayHaveBots: Bool) {
        self.chat = chat
        self.member = member
        self.memberIDs = memberIDs
        self.existing = existing
        self.mayHaveBots = mayHaveBots
    }
}

/// An event ready to be appended to the log: encoded once, with its audience and time.
package struct LogEntry: Sendable {
    package var event: ServerEvent
    package var payload: Data
    package var audience: EventAudience
    package var at: Date

    package init(event: ServerEvent, payload: Data, audience: EventAudience, at: Date) {
        self.event = event
        self.payload = payload
        self.audience = audience
        self.at = at
    }
}

/// A user account as stored: the directory entry plus its secrets.
package struct UserRecord: Sendable, Hashable {
    package var user: User
    /// A self-describing password hash (`scrypt$…`), or nil when the account cannot log in.
    package var passwordHash: String?

    package init(user: User, passwordHash: String?) {
        self.user = user
        self.passwordHash = passwordHash
    }
}

/// A session as stored: never the token, only its SHA-256.
package struct SessionRecord: Sendable, Hashable {
    package var session: Session
    package var tokenHash: [UInt8]

    package init(session: Session, tokenHash: [UInt8]) {
        self.session = session
        self.tokenHash = tokenHash
    }
}

/// A member's view of one chat, as the chat list needs it.
package struct ChatListRow: Sendable, Hashable {
    package var chat: Chat
    package var member: ChatMember
    package var peerID: UserID?
    package var lastMessage: Message?
    package var unreadCount: Int

    package init(chat: Chat, member: ChatMember, peerID: UserID?, lastMessage: Message?, unreadCount: Int) {
        self.chat = chat
        self.member = member
        self.peerID = peerID
        self.lastMessage = lastMessage
        self.unreadCount = unreadCount
    }
}

/// Which side of an anchor a history page is taken from.
package enum HistoryDirection: Sendable {
    /// The newest messages.
    case latest
    /// Messages with `chatSeq < anchor`, newest of them.
    case before(Int64)
    /// Messages with `chatSeq > anchor`, oldest of them.
    case after(Int64)
}

/// A durable event after commit: its position, who may see it, and its encoded form.
///
/// `payload` is the event in ``VestnikJSON``, encoded once when written; the same bytes are
/// stored and sent to every recipient.
package struct CommittedEvent: Sendable {
    package var seq: EventSeq
    package var event: ServerEvent
    package var recipients: [UserID]
    package var payload: Data

    package init(seq: EventSeq, event: ServerEvent, recipients: [UserID], payload: Data) {
        self.seq = seq
        self.event = event
        self.recipients = recipients
        self.payload = payload
    }
}

/// A durable event as one user reads it back from the log.
package struct LoggedEvent: Sendable {
    package var seq: EventSeq
    package var payload: Data
    package init(seq: EventSeq, payload: Data) {
        self.seq = seq
        self.payload = payload
    }
}

/// Queries, available inside reads and writes.
package protocol StoreReader: Sendable {
    func user(_ id: UserID) async throws -> UserRecord?
    func user(login: String) async throws -> UserRecord?
    func users(_ ids: [UserID]) async throws -> [User]
    /// Users whose name, login, email, department or position contains `query`
    /// (already lowercased by the caller), by display name.
    func searchUsers(_ query: String, limit: Int) async throws -> [User]
    func allUsers(limit: Int, offset: Int) async throws -> [User]
    /// Users whose e-mail equals `email` ignoring ASCII case (an indexed lookup: bots ask for up
    /// to a thousand addresses at once). The caller passes the address ASCII-lowercased.
    func users(email: String, limit: Int) async throws -> [User]

    func session(tokenHash: [UInt8]) async throws -> SessionRecord?
    func sessions(of user: UserID) async throws -> [Session]

    func chat(_ id: ChatID) async throws -> Chat?
    func personalChat(between a: UserID, and b: UserID) async throws -> ChatID?
    func notesChat(of user: UserID) async throws -> ChatID?
    func member(_ user: UserID, of chat: ChatID) async throws -> ChatMember?
    func members(of chat: ChatID) async throws -> [ChatMember]
    func memberIDs(of chat: ChatID) async throws -> [UserID]
    /// The user's chats, each with the newest message the user may see and the unread count.
    func chatList(of user: UserID) async throws -> [ChatListRow]
    /// Distinct users sharing at least one chat with `user` (who see their presence), at most `limit`.
    func contacts(of user: UserID, limit: Int) async throws -> [UserID]

    func message(_ id: MessageID) async throws -> Message?
    /// The sender's message in `chat` sent with this idempotency key.
    func message(in chat: ChatID, sender: UserID, clientMessageID: String) async throws -> Message?
    func message(chat: ChatID, chatSeq: Int64) async throws -> Message?
    /// Up to `limit` messages on one side of an anchor, returned oldest first.
    /// - Parameter viewer: when set, only messages `viewer` may see count (those without
    ///   recipients, sent by `viewer`, or addressed to `viewer`), so a page is full whenever
    ///   history has enough visible messages.
    func messages(in chat: ChatID, _ direction: HistoryDirection, limit: Int, visibleTo viewer: UserID?) async throws -> [Message]
    func pinnedMessages(in chat: ChatID) async throws -> [Message]
    func edits(of message: MessageID) async throws -> [MessageEdit]
    func reactions(of message: MessageID) async throws -> [ReactionSummary]
    /// Messages in `chat` after `readSeq` not sent by `user` and not deleted.
    /// Messages after `readSeq` from others that `user` may see (recipients respected).
    func unreadCount(in chat: ChatID, for user: UserID, after readSeq: Int64) async throws -> Int
    /// Members whose read position is at least `chatSeq`.
    func readers(of chat: ChatID, atLeast chatSeq: Int64) async throws -> [UserID]

    /// Events for `user` after `since`, in order, at most `limit`.
    func events(for user: UserID, after since: EventSeq, limit: Int) async throws -> [LoggedEvent]

    /// A registered bot (its user row has kind `botx`).
    func bot(_ id: UserID) async throws -> BotRecord?
    /// Every registered bot, by name.
    func bots() async throws -> [BotRecord]
    /// The registered bots that are members of `chat`.
    func botMembers(of chat: ChatID) async throws -> [BotRecord]
    /// Jobs queued for `bot` (for status display).
    func pendingBotJobs(of bot: UserID) async throws -> Int
    /// A chat's stealth settings; nil when stealth is off.
    func stealth(of chat: ChatID) async throws -> StealthSettings?
    /// Messages whose stealth lifetime ended before `now`, at most `limit`.
    func expiredMessages(before now: Date, limit: Int) async throws -> [MessageID]
    /// Whether any job is due at `now`: a cheap read, so an idle deliverer need not open write
    /// transactions to find out.
    func hasDueBotJobs(now: Date) async throws -> Bool
    /// The oldest position still kept; a `since` below `oldest - 1` cannot be served.
    func oldestRetainedSeq() async throws -> EventSeq
    /// The newest committed position as this transaction sees it.
    func headSeq() async throws -> EventSeq
    /// The chat, the sender's membership, every member, and the retry a client message id names;
    /// nil when the chat does not exist or `sender` is not a member. One call because every send
    /// asks all of it: an adapter with network round trips answers it in as few as it can.
    func sendingContext(chat: ChatID, sender: UserID, clientMessageID: String?) async throws -> SendingContext?
}

/// Changes; only inside ``Store/write(_:)``.
package protocol StoreWriter: StoreReader {
    func insertUser(_ record: UserRecord, searchText: String) async throws
    func updateUser(_ user: User, searchText: String) async throws
    func setPasswordHash(_ hash: String, for user: UserID) async throws

    func insertSession(_ record: SessionRecord) async throws
    func touchSession(_ id: SessionID, at: Date) async throws
    /// Deletes the session if it belongs to `user`; false when there was none.
    func deleteSession(_ id: SessionID, of user: UserID) async throws -> Bool
    /// Deletes every session of `user`, returning their ids.
    func deleteSessions(of user: UserID) async throws -> [SessionID]
    func deleteExpiredSessions(before: Date) async throws -> Int

    /// Inserts a chat; for personal and notes chats `uniqueKey` makes the pair (or owner) unique.
    func insertChat(_ chat: Chat, uniqueKey: String?) async throws
    func updateChat(_ chat: Chat) async throws
    func insertMember(_ member: ChatMember, into chat: ChatID) async throws
    func deleteMember(_ user: UserID, from chat: ChatID) async throws
    func setRole(_ role: MemberRole, of user: UserID, in chat: ChatID) async throws
    func setReadSeq(_ seq: Int64, of user: UserID, in chat: ChatID) async throws

    /// Inserts a message (its `chatSeq` already taken from the chat). Its text is its only
    /// version until the first edit (see ``recordEdit(of:text:mentions:version:at:)``).
    func insertMessage(_ message: Message) async throws
    /// Replaces the text and mentions, bumps the edit count and records the new version — only
    /// while the message is not deleted (a conditional statement, so a delete that committed
    /// after the caller read the message still wins). The first edit stores the original text
    /// as version 0 first.
    /// - Returns: false when the message is deleted or gone; the caller then fails its write
    ///   (a version 0 stored meanwhile goes with the rolled-back transaction).
    func recordEdit(of message: MessageID, text: String, mentions: [Mention], version: Int, at: Date) async throws -> Bool
    /// Turns the message into a tombstone: text, mentions, extras, versions, reactions and pin go.
    /// - Parameter recipients: kept on the tombstone of a message addressed to some members, so
    ///   the others never learn it existed.
    func markDeleted(_ message: MessageID, at: Date, keepingRecipients recipients: [UserID]?) async throws
    /// Adds a reaction; false if it was already there.
    func addReaction(_ emoji: String, by user: UserID, to message: MessageID, at: Date) async throws -> Bool
    /// Removes a reaction; false if it was not there.
    func removeReaction(_ emoji: String, by user: UserID, from message: MessageID) async throws -> Bool
    func setPinned(_ pinned: Bool, message: MessageID, at: Date) async throws

    /// Replaces a message's extras (buttons, metadata, attachments, …); empty extras clear them.
    /// Like ``recordEdit(of:text:mentions:version:at:)``, only while the message is not deleted.
    /// - Returns: false, changing nothing, when the message is deleted or gone.
    func setExtras(_ extras: MessageExtras, of message: MessageID) async throws -> Bool

    /// Turns stealth on (settings) or off (nil) for a chat.
    func setStealth(_ settings: StealthSettings?, for chat: ChatID) async throws
    /// Schedules a message's disappearance (nil: never).
    func setExpiry(_ at: Date?, of message: MessageID) async throws

    func insertBot(_ bot: BotRecord) async throws
    /// Updates everything but the id and creation time.
    func updateBot(_ bot: BotRecord) async throws
    /// Deletes the bot row and its queued deliveries (its user row stays, blocked, for history).
    func deleteBot(_ id: UserID) async throws

    /// Queues a delivery to a bot.
    func enqueueBotJob(_ job: BotJobRecord) async throws
    /// Leases up to `limit` jobs due at `now` (oldest first), at most `perBot` of any one bot,
    /// skipping `busyBots`: their `nextAttemptAt` becomes `leaseUntil`, so a crashed deliverer's
    /// jobs come back. The per-bot cap is what keeps one bot's backlog from filling every claim.
    func claimBotJobs(now: Date, leaseUntil: Date, limit: Int, perBot: Int, skipping busyBots: [UserID]) async throws -> [BotJobRecord]
    /// Removes a delivered (or abandoned) job.
    func deleteBotJob(_ id: UUID) async throws
    /// Reschedules a failed job.
    func rescheduleBotJob(_ id: UUID, attempts: Int, at: Date, error: String) async throws

    /// Records the fingerprint of the server key `name` unless one is recorded already.
    /// - Returns: the fingerprint on record (the caller's if it was the first).
    func claimServerKeyFingerprint(_ fingerprint: String, name: String) async throws -> String

    /// Appends a durable event for `audience` and returns its position. Events for the same
    /// recipient set share one stored audience (decision 0006).
    func appendEvent(_ event: ServerEvent, payload: Data, audience: EventAudience, at: Date) async throws -> EventSeq
    /// Stores a new message as one change: the chat row (its new `lastMessageSeq` and activity
    /// time), the message, `reader`'s read position moved up to it, and the
    /// log entry announcing it. One call because every send does all of it: an adapter with
    /// network round trips may do it in one. Call it through ``EventLog/append(_:to:storing:)``,
    /// which builds the entry and publishes the event after commit.
    /// - Returns: the log position of `entry`.
    func insertMessage(_ message: Message, updating chat: Chat, readBy reader: UserID?, announcing entry: LogEntry) async throws -> EventSeq
    /// Deletes the oldest events older than `before`, at most `limit` of them, and returns how
    /// many. Bounded so that one call holds the log briefly (every send waits for it); call again
    /// while it returns `limit`.
    func pruneEvents(before: Date, limit: Int) async throws -> Int
}

extension StoreWriter {
    package func insertMessage(_ message: Message, updating chat: Chat, readBy reader: UserID?, announcing entry: LogEntry) async throws -> EventSeq {
        try await updateChat(chat)
        try await insertMessage(message)
        if let reader { try await setReadSeq(message.chatSeq, of: reader, in: chat.id) }
        return try await appendEvent(entry.event, payload: entry.payload, audience: entry.audience, at: entry.at)
    }

    /// Appends a durable event for `recipients` (in any order, duplicates ignored).
    package func appendEvent(_ event: ServerEvent, payload: Data, recipients: [UserID], at: Date) async throws -> EventSeq {
        try await appendEvent(event, payload: payload, audience: EventAudience(recipients), at: at)
    }
}

/// The users a logged event is for, identified by a digest of the set.
///
/// The log stores each distinct recipient set once (its members in one table) and every event
/// refers to its set, instead of one row per recipient and event: a chat's messages go to the
/// same set until its membership changes, so a send to a 5,000-member channel writes one event
/// row rather than 5,001 rows in two indexes (decision 0006). The digest is SHA-256 over the
/// sorted 16-byte ids, so equal sets always find the same stored audience and different sets
/// never collide in practice.
package struct EventAudience: Sendable, Hashable {
    /// Sorted, without duplicates.
    package let members: [UserID]
    /// 32 bytes.
    package let digest: Data

    package init(_ recipients: some Sequence<UserID>) {
        // Sorting first and dropping neighbours that repeat avoids hashing every id into a set.
        var sorted = recipients.sorted()
        var unique = 0
        for index in sorted.indices where index == 0 || sorted[index] != sorted[unique - 1] {
            sorted[unique] = sorted[index]
            unique += 1
        }
        sorted.removeLast(sorted.count - unique)
        members = sorted
        var hasher = SHA256()
        withUnsafeBytes(of: UInt64(members.count).bigEndian) { hasher.update(bufferPointer: $0) }
        for member in members {
            withUnsafeBytes(of: member.uuid.uuid) { hasher.update(bufferPointer: $0) }
        }
        digest = Data(hasher.finalize())
    }
}

extension StoreReader {
    /// Up to `limit` messages on one side of an anchor, whoever they are addressed to.
    package func messages(in chat: ChatID, _ direction: HistoryDirection, limit: Int) async throws -> [Message] {
        try await messages(in: chat, direction, limit: limit, visibleTo: nil)
    }
}

/// One reaction row as stores read them (ordered by message, time of reaction).
package struct ReactionRow: Sendable {
    package var messageID: MessageID
    package var emoji: String
    package var userID: UserID
    package init(messageID: MessageID, emoji: String, userID: UserID) {
        self.messageID = messageID
        self.emoji = emoji
        self.userID = userID
    }
}

extension Message {
    /// Attaches reaction rows to messages: one summary per emoji, in the order the emoji first
    /// appeared, users in the order they reacted. Shared by every store adapter.
    package static func attaching(_ rows: [ReactionRow], to messages: [Message]) -> [Message] {
        var byMessage: [MessageID: [ReactionSummary]] = [:]
        for row in rows {
            var list = byMessage[row.messageID] ?? []
            if let index = list.firstIndex(where: { $0.emoji == row.emoji }) {
                list[index].count += 1
                list[index].users.append(row.userID)
            } else {
                list.append(ReactionSummary(emoji: row.emoji, count: 1, users: [row.userID]))
            }
            byMessage[row.messageID] = list
        }
        return messages.map { message in
            var copy = message
            copy.reactions = byMessage[message.id] ?? []
            return copy
        }
    }
}

/// A bot registration as stored.
package struct BotRecord: Sendable, Hashable {
    package var id: UserID
    /// Where the bot listens: `{url}/command`, `{url}/status`, `{url}/notification/callback`.
    package var url: String
    /// The secret key sealed with the server key (see ``SecretBox``); never the plain secret.
    package var sealedSecret: Data
    package var allowedData: BotAllowedData
    package var enabled: Bool
    package var description: String
    /// The last delivery outcome (`ok`, `http 503`, `connection refused`), for operators.
    package var status: String?
    package var statusAt: Date?
    /// The command menu from the bot's `/status`.
    package var commands: [BotCommand]
    package var createdAt: Date
    /// How `sealedSecret` was sealed: 0 before migration 5 (no additional data), 1 with the bot
    /// id as AES-GCM additional authenticated data (see ``SecretBox``).
    package var secretFormat: Int
    /// What the administrator allows the bot beyond its chats.
    package var permissions: Set<BotPermission>

    package init(
        id: UserID, url: String, sealedSecret: Data, allowedData: BotAllowedData, enabled: Bool, description: String, status: String?,
        statusAt: Date?, commands: [BotCommand], createdAt: Date, secretFormat: Int = SecretBox.currentFormat, permissions: Set<BotPermission> = []
    ) {
        self.secretFormat = secretFormat
        self.permissions = permissions
        self.id = id
        self.url = url
        self.sealedSecret = sealedSecret
        self.allowedData = allowedData
        self.enabled = enabled
        self.description = description
        self.status = status
        self.statusAt = statusAt
        self.commands = commands
        self.createdAt = createdAt
    }
}

/// A queued delivery to a bot.
package struct BotJobRecord: Sendable, Hashable {
    package var id: UUID
    package var botID: UserID
    package var job: BotJob
    package var attempts: Int
    package var nextAttemptAt: Date
    package var createdAt: Date

    package init(id: UUID, botID: UserID, job: BotJob, attempts: Int, nextAttemptAt: Date, createdAt: Date) {
        self.id = id
        self.botID = botID
        self.job = job
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
    }
}

/// What login attempts are counted under: an HMAC-SHA256 of "account:<login>" or
/// "address:<address>", in hex, under a key every node of a deployment derives from its server
/// key. Keyed so that the store keeps neither client addresses nor mistyped logins (a password
/// typed into the login field) in a form a copy of the database could reverse: a plain hash of
/// an IPv4 address is reversed by trying all of them.
package struct AttemptKey: Sendable, Hashable, CustomStringConvertible {
    package let hex: String

    package static func account(_ login: String, keyedBy secret: SymmetricKey) -> AttemptKey { AttemptKey("account:" + login, secret) }
    package static func address(_ address: String, keyedBy secret: SymmetricKey) -> AttemptKey { AttemptKey("address:" + address, secret) }

    private init(_ text: String, _ secret: SymmetricKey) {
        hex = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: secret).hexString
    }

    package var description: String { hex }
}

/// What ``Store/countAttempt(under:limit:at:)`` answered.
package enum AttemptCount: Sendable, Hashable {
    /// Counted: the key's attempts are now spent until this time (a give-back names it).
    case counted(until: Date)
    /// Refused: the next attempt will be counted after this many seconds.
    case refused(wait: TimeInterval)

    package var isCounted: Bool { if case .counted = self { true } else { false } }
}

/// At most `count` attempts in a burst, then one every `window / count` (the generic cell rate
/// algorithm; decision 0017): a key's row keeps the time its counted attempts are spent until,
/// which each attempt moves on by ``spacingMilliseconds``, and an attempt that would find it more
/// than ``headroomMilliseconds`` past now is refused.
package struct AttemptLimit: Sendable, Hashable {
    package var count: Int
    package var window: TimeInterval

    /// `count` between 1 and a million; `window` between 1 ms and a year (a value outside, or not finite, is
    /// clamped into that range).
    package init(count: Int, window: TimeInterval) {
        self.count = min(max(1, count), 1_000_000)
        self.window = window.isFinite ? min(max(0.001, window), 366 * 86_400) : 300
    }

    /// What one attempt adds to its key's spent-until time, in milliseconds.
    package var spacingMilliseconds: Int64 { max(1, Int64((window * 1000 / Double(count)).rounded(.up))) }
    /// How far past now the spent-until time may be before an attempt, in milliseconds: room
    /// for the other `count - 1` of a burst.
    package var headroomMilliseconds: Int64 { spacingMilliseconds * Int64(count - 1) }
}
