import Foundation
import NIOCore
import PostgresNIO
import Synchronization
import VestnikCore
import VestnikModel

/// The sends of one write transaction that are answered from one batched read and written by
/// one batched statement (decision 0011).
///
/// Why: the single writer's transaction is a chain of round trips, and with a send costing two
/// (its context, its insert) the chain, not the CPU, bounded PostgreSQL throughput. A batch whose
/// leading writes announced sends (``WriteIntent``) instead costs one round trip for all their
/// contexts (``PostgresAccess/deferringSends(_:)``) and one for all their inserts
/// (``PostgresAccess/settleDeferredSends()``), whatever its size.
///
/// Correctness rests on three rules:
/// - The batched read locks the chats in id order and then the log's counter row; the events'
///   positions are counted here from the head it returned, which no other transaction can
///   move while this one holds that row.
/// - The answers are kept current while sends are held back: each held send updates its chat
///   (the whole row, as Core wrote it) and its sender's read position, and a send with a client
///   message id drops its key, so a retry in the same batch asks the database (after the flush)
///   and finds the original.
/// - Any other statement first writes what was held back and ends the deferral for the rest of
///   the transaction (``PostgresAccess/rows(_:)``), so it sees every earlier write and nothing
///   cached can go stale behind it. A failed flush poisons the state: the batch's
///   ``GroupCommit/BeforeCommit`` check then fails and the batch runs again isolated, where
///   nothing is deferred, so every write meets its own error.
final class DeferredSends: Sendable {
    private struct ContextKey: Hashable {
        let chat: ChatID
        let sender: UserID
        let clientMessageID: String?
    }

    struct MemberKey: Hashable {
        let chat: ChatID
        let user: UserID
    }

    struct HeldSend {
        let row: NewMessageRow
        let reader: UserID?
        let entry: LogEntry
        let seq: Int64
    }

    private struct State {
        var active = true
        var failed = false
        var head: Int64
        /// Keys whose sender is a member, without a retry to return. A key the batched read did
        /// not answer (not a member, a retry, or not announced) is a miss: asked the usual way.
        var answered: Set<ContextKey> = []
        var chats: [ChatID: Chat] = [:]
        var members: [MemberKey: ChatMember] = [:]
        var memberIDs: [ChatID: [UserID]] = [:]
        var mayHaveBots: [ChatID: Bool] = [:]
        var held: [HeldSend] = []
        /// Keys the batched read found not to be members' (answered nil without a statement).
        var refused: Set<ContextKey> = []
    }

    private let state: Mutex<State>

    private init(head: Int64) { state = Mutex(State(head: head)) }

    /// The state after the batched read's rows (see migrations 8 and 10); nil when no row came
    /// back (no sender was a member of their chat), in which case nothing is locked and nothing
    /// deferred.
    static func from(rows: [PostgresRow], intents: [WriteIntent], access: PostgresAccess) throws -> DeferredSends? {
        var deferred: DeferredSends?
        var found = Set<Int>()
        var memberIDsByChat: [ChatID: [UserID]] = [:]
        for row in rows {
            let c = Columns(row)
            let ordinal = Int(try c.int(0)) - 1
            guard intents.indices.contains(ordinal), case .send(let chatID, let sender, let clientMessageID) = intents[ordinal] else {
                throw StoreError.backend("the batched sending contexts returned an unexpected row")
            }
            // A chat's first row carries its member ids (migration 10; every row did before it).
            // Read before the row may be skipped below, so that the chat's later rows have them.
            if memberIDsByChat[chatID] == nil, try c.text(1) == chatID.description, let ids = try c.optionalTexts(14) {
                memberIDsByChat[chatID] = ids.compactMap(UserID.init)
            }
            // A row this node cannot read (a chat kind or role a newer node wrote) is no chat to
            // it, as on the per-send path.
            guard let chat = try access.chat(c, offset: 1), let member = try access.member(c, offset: 10) else { continue }
            guard chat.id == chatID, member.userID == sender else {
                throw StoreError.backend("the batched sending contexts returned an unexpected row")
            }
            let head = try c.int(17)
            let state = deferred ?? DeferredSends(head: head)
            deferred = state
            found.insert(ordinal)
            let hasBots = try c.bool(15)
            let isRetry = try c.optionalText(16) != nil
            state.state.withLock { state in
                let key = ContextKey(chat: chatID, sender: sender, clientMessageID: clientMessageID)
                state.chats[chatID] = chat
                state.members[MemberKey(chat: chatID, user: sender)] = member
                state.mayHaveBots[chatID] = hasBots
                // A retry returns the stored original, which takes a read of the message.
                if !isRetry { state.answered.insert(key) }
            }
        }
        guard let deferred else { return nil }
        deferred.state.withLock { state in
            // A chat without member ids (none should be) is asked the usual way, see `context`.
            state.memberIDs = memberIDsByChat
            for (ordinal, intent) in intents.enumerated() where !found.contains(ordinal) {
                guard case .send(let chat, let sender, let clientMessageID) = intent else { continue }
                state.refused.insert(ContextKey(chat: chat, sender: sender, clientMessageID: clientMessageID))
            }
        }
        return deferred
    }

    enum Lookup {
        case answered(SendingContext?)
        case miss
    }

    /// The send's context if the batched read answered it and nothing since has made the answer
    /// uncertain.
    func context(chat: ChatID, sender: UserID, clientMessageID: String?) -> Lookup {
        state.withLock { state in
            guard state.active else { return .miss }
            let key = ContextKey(chat: chat, sender: sender, clientMessageID: clientMessageID)
            if state.refused.contains(key) { return .answered(nil) }
            guard state.answered.contains(key), let found = state.chats[chat], let member = state.members[MemberKey(chat: chat, user: sender)],
                let memberIDs = state.memberIDs[chat]
            else { return .miss }
            return .answered(
                SendingContext(chat: found, member: member, memberIDs: memberIDs, existing: nil, mayHaveBots: state.mayHaveBots[chat] ?? true))
        }
    }

    /// Holds the send back and returns its log position; nil when deferral has ended or the
    /// chat was not part of the batched read (the caller then stores it at once).
    func hold(_ row: NewMessageRow, updating chat: Chat, readBy reader: UserID?, announcing entry: LogEntry) -> Int64? {
        state.withLock { state in
            let message = row.message
            guard state.active, state.chats[chat.id] != nil, message.chatID == chat.id else { return nil }
            state.head += 1
            state.held.append(HeldSend(row: row, reader: reader, entry: entry, seq: state.head))
            state.chats[chat.id] = chat
            if let reader, var member = state.members[MemberKey(chat: chat.id, user: reader)] {
                member.readSeq = max(member.readSeq, message.chatSeq)
                state.members[MemberKey(chat: chat.id, user: reader)] = member
            }
            if let clientMessageID = message.clientMessageID {
                state.answered.remove(ContextKey(chat: chat.id, sender: message.senderID, clientMessageID: clientMessageID))
            }
            return state.head
        }
    }

    /// Ends the deferral; returns what was held back (to be written now), the chats' final rows,
    /// and the head the log's counter is to be set to.
    func end() -> (held: [HeldSend], chats: [Chat], head: Int64)? {
        state.withLock { state in
            guard state.active else { return nil }
            state.active = false
            let touched = Set(state.held.map(\.row.message.chatID))
            let chats = touched.compactMap { state.chats[$0] }
            defer { state.held = [] }
            return (state.held, chats, state.head)
        }
    }

    func poison() { state.withLock { $0.failed = true } }

    var failed: Bool { state.withLock { $0.failed } }
}

extension PostgresAccess {
    /// This access with the sends of `intents` answered by one batched read (see
    /// ``DeferredSends``); unchanged for fewer than two sends, where batching saves nothing.
    func deferringSends(_ intents: [WriteIntent]) async throws -> PostgresAccess {
        guard intents.count >= 2, locking else { return self }
        var chats: [String] = []
        var senders: [String] = []
        var clientMessageIDs: [ByteBuffer] = []
        for case .send(let chat, let sender, let clientMessageID) in intents {
            chats.append(chat.description)
            senders.append(sender.description)
            clientMessageIDs.append(ByteBuffer(string: clientMessageID ?? ""))
        }
        let found = try await rows(
            "SELECT * FROM vestnik_sending_contexts(\(chats)::text[], \(senders)::text[], \(clientMessageIDs)::bytea[])",
            preparedAs: SendingContextsStatement.self)
        guard let deferred = try DeferredSends.from(rows: found, intents: intents, access: self) else { return self }
        var access = self
        access.deferred = deferred
        return access
    }

    /// Writes the sends held back, in one statement, and ends the deferral; a no-op without one.
    /// Every statement of the transaction but the batched ones runs after this (see ``rows(_:)``).
    func settleDeferredSends() async throws {
        guard let deferred else { return }
        guard let (held, chats, head) = deferred.end() else {
            if deferred.failed { throw StoreError.backend("a batched insert of messages failed") }
            return
        }
        guard !held.isEmpty else { return }
        do {
            try await flush(held, chats: chats, head: head)
        } catch {
            deferred.poison()
            throw error
        }
    }

    private func flush(_ held: [DeferredSends.HeldSend], chats: [Chat], head: Int64) async throws {
        var ids: [String] = [], chatIDs: [String] = [], chatSeqs: [Int64] = [], senders: [String] = [], texts: [ByteBuffer] = []
        var replies: [String] = [], forwards: [String] = [], mentions: [String] = [], createdAts: [Int64] = []
        var clientMessageIDs: [ByteBuffer] = [], extras: [String] = []
        var seqs: [Int64] = [], eventAts: [Int64] = [], payloads: [ByteBuffer] = [], digests: [ByteBuffer] = []
        var readers: [DeferredSends.MemberKey: Int64] = [:]
        for send in held {
            let m = send.row.message
            ids.append(m.id.description)
            chatIDs.append(m.chatID.description)
            chatSeqs.append(m.chatSeq)
            senders.append(m.senderID.description)
            texts.append(ByteBuffer(string: m.text))
            // Empty strings stand for NULL: none of these columns holds an empty value.
            replies.append(m.replyTo?.description ?? "")
            forwards.append(send.row.forward ?? "")
            mentions.append(send.row.mentions ?? "")
            createdAts.append(m.createdAt.millisecondsSince1970)
            clientMessageIDs.append(ByteBuffer(string: m.clientMessageID ?? ""))
            extras.append(send.row.extras ?? "")
            seqs.append(send.seq)
            eventAts.append(send.entry.at.millisecondsSince1970)
            payloads.append(ByteBuffer(bytes: send.entry.payload))
            digests.append(ByteBuffer(bytes: send.entry.audience.digest))
            if let reader = send.reader {
                let key = DeferredSends.MemberKey(chat: m.chatID, user: reader)
                readers[key] = max(readers[key] ?? 0, m.chatSeq)
            }
        }
        var readerChats: [String] = [], readerUsers: [String] = [], readerSeqs: [Int64] = []
        for (key, seq) in readers {
            readerChats.append(key.chat.description)
            readerUsers.append(key.user.description)
            readerSeqs.append(seq)
        }
        let found = try await rows(
            """
            WITH input AS (
              SELECT * FROM unnest(\(ids)::text[], \(chatIDs)::text[], \(chatSeqs)::int8[], \(senders)::text[], \(texts)::bytea[],
                \(replies)::text[], \(forwards)::text[], \(mentions)::text[], \(createdAts)::int8[], \(clientMessageIDs)::bytea[],
                \(extras)::text[], \(seqs)::int8[], \(eventAts)::int8[], \(payloads)::bytea[], \(digests)::bytea[])
              AS u(id, chat_id, chat_seq, sender_id, text, reply_to, forward_json, mentions_json, created_at, client_message_id,
                extras_json, seq, event_at, payload, digest)
            ),
            chat AS (
              UPDATE chats SET title = u.title, description = u.description, member_count = u.member_count,
                last_message_seq = u.last_message_seq, last_activity_at = u.last_activity_at
              FROM unnest(\(chats.map(\.id.description))::text[], \(chats.map(\.title))::text[], \(chats.map(\.description))::text[],
                \(chats.map { Int64($0.memberCount) })::int8[], \(chats.map(\.lastMessageSeq))::int8[],
                \(chats.map(\.lastActivityAt.millisecondsSince1970))::int8[])
                AS u(id, title, description, member_count, last_message_seq, last_activity_at)
              WHERE chats.id = u.id
            ),
            message AS (
              INSERT INTO messages (\(unescaped: Self.messageInsertColumns))
              SELECT id, chat_id, chat_seq, sender_id, text, NULLIF(reply_to, ''), NULLIF(forward_json, ''), NULLIF(mentions_json, ''),
                created_at, 0, NULLIF(client_message_id, ''::bytea), NULLIF(extras_json, '')
              FROM input
            ),
            reader AS (
              UPDATE chat_members SET read_seq = GREATEST(read_seq, u.seq)
              FROM unnest(\(readerChats)::text[], \(readerUsers)::text[], \(readerSeqs)::int8[]) AS u(chat_id, user_id, seq)
              WHERE chat_members.chat_id = u.chat_id AND chat_members.user_id = u.user_id
            ),
            head AS (UPDATE log_state SET head_seq = \(head) WHERE id = 1),
            audience AS (SELECT id, digest FROM event_audiences WHERE digest IN (SELECT digest FROM input) FOR KEY SHARE),
            logged AS (
              INSERT INTO events (seq, created_at, payload, audience_id)
              SELECT input.seq, input.event_at, input.payload, audience.id FROM input JOIN audience ON audience.digest = input.digest
              RETURNING seq
            )
            SELECT
              (SELECT count(*) FROM (SELECT pg_notify(\(PostgresStore.eventChannel), max(seq)::text || ' ' || \(origin)) FROM logged
                HAVING count(*) > 0) AS notified),
              ARRAY(SELECT input.seq FROM input WHERE NOT EXISTS (SELECT 1 FROM audience WHERE audience.digest = input.digest) ORDER BY input.seq)
            """, preparedAs: InsertMessagesStatement.self)
        guard let row = found.first else { throw StoreError.backend("the batched insert of messages returned no row") }
        // A recipient set seen for the first time: its events go in afterwards, at the positions
        // already taken (one notification each, as `appendEvent`'s).
        let missing = Set(try Columns(row).ints(1))
        for send in held where missing.contains(send.seq) {
            try await insertEvent(
                seq: send.seq, payload: send.entry.payload, audienceID: try await storedAudience(send.entry.audience, at: send.entry.at),
                at: send.entry.at)
        }
    }
}

enum SendingContextsStatement: PreparedSite { static let statementName = "sending_contexts" }
enum InsertMessagesStatement: PreparedSite { static let statementName = "insert_messages" }
