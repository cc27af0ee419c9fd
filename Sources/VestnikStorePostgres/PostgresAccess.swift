import Foundation
import Logging
import PostgresNIO
import VestnikCore
import VestnikModel

/// The store's queries and changes over one leased connection, inside a transaction the caller
/// (``PostgresStore``) opened. Mirrors `SQLiteAccess` query by query; differences are commented.
///
/// Every value is bound through `PostgresQuery` interpolation; the only `unescaped` pieces are
/// constant SQL fragments defined in this file.
struct PostgresAccess: StoreWriter {
    let connection: PostgresConnection
    let logger: Logger
    /// True inside write transactions. Single-row lookups of a chat or a user by id then lock the
    /// row (`FOR NO KEY UPDATE`): Core reads those rows, changes them and writes them back (the
    /// chat's `last_message_seq`, `member_count`; a user's profile). SQLite serializes whole write
    /// transactions so this is safe there; under READ COMMITTED the row lock gives the same
    /// answer for the rows involved — a concurrent writer waits and then reads the committed
    /// row — instead of a lost update or a spurious `chat_seq` conflict. `NO KEY`: ids never
    /// change, and this strength does not block inserts whose foreign keys point at the row.
    /// Message rows are not locked: Core reads a message before its chat in some transactions and
    /// after it in others, and locking both in opposite orders could deadlock. Chat and user locks
    /// are always taken before `log_state`'s (events are appended last), so they add no cycle.
    let locking: Bool
    /// The writing store's tag, appended to event notifications (see `PostgresStore.origin`).
    let origin: String
    /// Every statement runs registered here, so one the server never answers ends; nil for
    /// migrations, which may legitimately take longer than the timeout.
    let watchdog: AnswerWatchdog?
    /// The sends this write transaction answers from a batched read and writes together
    /// (see ``deferringSends(_:)``); nil outside such a batch.
    var deferred: DeferredSends? = nil

    private var forUpdate: String { locking ? " FOR NO KEY UPDATE" : "" }

    /// Runs one statement and collects its rows, translating database errors. Sends held back
    /// are written first (see ``DeferredSends``), so the statement sees them.
    @discardableResult
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await settleDeferredSends()
        do {
            try connection.checkOpen()
            return try await answered { try await connection.query(query, logger: logger).collect() }
        } catch {
            throw PostgresErrors.translate(error)
        }
    }

    /// Runs one statement of a fixed text as a prepared statement (see ``PreparedQuery``).
    @discardableResult
    func rows<Site: PreparedSite>(_ query: PostgresQuery, preparedAs site: Site.Type) async throws -> [PostgresRow] {
        try await settleDeferredSends()
        guard let prepared = PreparedQuery<Site>(query, store: origin) else { return try await rows(query) }
        do {
            try connection.checkOpen()
            return try await answered {
                var collected: [PostgresRow] = []
                for try await row in try await connection.execute(prepared, logger: logger) { collected.append(row) }
                return collected
            }
        } catch {
            if PreparedQuery<Site>.mayHaveFailedToPrepare(error) {
                PreparedQuery<Site>.stopPreparing(in: origin)
                logger.warning(
                    "prepared statement failed; this node runs it unprepared from now on",
                    metadata: ["vestnik.statement": "\(Site.statementName)", "vestnik.error": "\(PostgresErrors.translate(error))"])
            }
            throw PostgresErrors.translate(error)
        }
    }

    /// Runs `statement` registered with the watchdog, if this access has one.
    private func answered<T>(_ statement: () async throws -> T) async throws -> T {
        guard let watchdog else { return try await statement() }
        return try await watchdog.watch(connection, statement)
    }

    /// Runs a statement that returns one row with one count.
    private func count(_ query: PostgresQuery) async throws -> Int {
        guard let row = try await rows(query).first else { return 0 }
        return Int(try Columns(row).int(0))
    }

    // MARK: Users

    private static let userColumns =
        "id, login, display_name, email, department, position, is_admin, is_blocked, created_at, password_hash, kind"

    private func userRecord(_ row: PostgresRow) throws -> UserRecord? {
        let c = Columns(row)
        guard let id = UserID(try c.text(0)) else { return nil }
        let user = User(
            id: id, login: try c.text(1), displayName: try c.text(2), email: try c.optionalText(3), department: try c.optionalText(4),
            position: try c.optionalText(5), isAdmin: try c.bool(6), isBlocked: try c.bool(7), createdAt: try c.date(8),
            kind: UserKind(rawValue: try c.text(10)) ?? .user)
        return UserRecord(user: user, passwordHash: try c.optionalText(9))
    }

    func user(_ id: UserID) async throws -> UserRecord? {
        try await rows("SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id.description)\(unescaped: forUpdate)")
            .first.flatMap(userRecord)
    }

    func user(login: String) async throws -> UserRecord? {
        // PostgreSQL text cannot hold U+0000 (it would be an error), and no stored login has one.
        guard !login.unicodeScalars.contains("\u{0}") else { return nil }
        return try await rows("SELECT \(unescaped: Self.userColumns) FROM users WHERE login = \(login)").first.flatMap(userRecord)
    }

    func users(_ ids: [UserID]) async throws -> [User] {
        // One query instead of SQLite's loop; the result keeps the order (and repetitions) of `ids`
        // and skips unknown ids, as the loop does.
        guard !ids.isEmpty else { return [] }
        var byID: [UserID: User] = [:]
        for row in try await rows("SELECT \(unescaped: Self.userColumns) FROM users WHERE id = ANY(\(ids.map(\.description)))") {
            if let user = try userRecord(row)?.user { byID[user.id] = user }
        }
        return ids.compactMap { byID[$0] }
    }

    func users(email: String, limit: Int) async throws -> [User] {
        guard !email.unicodeScalars.contains("\u{0}") else { return [] }
        // `lower()` under the "C" collation folds ASCII only, as SQLite's; the expression matches
        // the `users_by_email` index of migration 4.
        return try await rows(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE lower(email) = \(email) ORDER BY login LIMIT \(Int64(limit))"
        ).compactMap { try userRecord($0)?.user }
    }

    func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        // strpos, not LIKE: `%` and `_` in the query are literal text (SQLite uses instr).
        // A query with U+0000 matches nothing (and could not be bound as text).
        guard !query.unicodeScalars.contains("\u{0}") else { return [] }
        return try await rows(
            """
            SELECT \(unescaped: Self.userColumns) FROM users WHERE strpos(search_text, \(query)) > 0
            ORDER BY display_name, login LIMIT \(Int64(limit))
            """
        ).compactMap { try userRecord($0)?.user }
    }

    func allUsers(limit: Int, offset: Int) async throws -> [User] {
        try await rows("SELECT \(unescaped: Self.userColumns) FROM users ORDER BY login LIMIT \(Int64(limit)) OFFSET \(Int64(offset))")
            .compactMap { try userRecord($0)?.user }
    }

    func insertUser(_ record: UserRecord, searchText: String) async throws {
        let u = record.user
        try await rows(
            """
            INSERT INTO users (\(unescaped: Self.userColumns), search_text) VALUES (\(u.id.description), \(u.login), \(u.displayName),
              \(u.email), \(u.department), \(u.position), \(u.isAdmin), \(u.isBlocked), \(u.createdAt.millisecondsSince1970),
              \(record.passwordHash), \(u.kind.rawValue), \(searchText))
            """)
    }

    func updateUser(_ u: User, searchText: String) async throws {
        try await rows(
            """
            UPDATE users SET display_name = \(u.displayName), email = \(u.email), department = \(u.department),
              position = \(u.position), is_admin = \(u.isAdmin), is_blocked = \(u.isBlocked), search_text = \(searchText)
            WHERE id = \(u.id.description)
            """)
    }

    func setPasswordHash(_ hash: String, for user: UserID) async throws {
        try await rows("UPDATE users SET password_hash = \(hash) WHERE id = \(user.description)")
    }

    // MARK: Sessions

    private static let sessionColumns = "id, user_id, token_hash, device_name, created_at, last_seen_at, expires_at"

    private func sessionRecord(_ row: PostgresRow) throws -> SessionRecord? {
        let c = Columns(row)
        guard let id = SessionID(try c.text(0)), let userID = UserID(try c.text(1)) else { return nil }
        let session = Session(
            id: id, userID: userID, deviceName: try c.text(3), createdAt: try c.date(4), lastSeenAt: try c.date(5), expiresAt: try c.date(6))
        return SessionRecord(session: session, tokenHash: [UInt8](try c.bytes(2)))
    }

    func session(tokenHash: [UInt8]) async throws -> SessionRecord? {
        try await rows("SELECT \(unescaped: Self.sessionColumns) FROM sessions WHERE token_hash = \(Data(tokenHash))").first
            .flatMap(sessionRecord)
    }

    func authenticationRecord(tokenHash: [UInt8]) async throws -> AuthenticationRecord? {
        guard
            let row = try await rows(
                """
                SELECT \(unescaped: Self.sessionColumns),
                  COALESCE((SELECT users.is_blocked FROM users WHERE users.id = sessions.user_id), TRUE)
                FROM sessions WHERE token_hash = \(Data(tokenHash))
                """
            ).first, let session = try sessionRecord(row)
        else { return nil }
        return AuthenticationRecord(session: session, userBlocked: try Columns(row).bool(7))
    }

    func sessions(of user: UserID) async throws -> [Session] {
        try await rows("SELECT \(unescaped: Self.sessionColumns) FROM sessions WHERE user_id = \(user.description) ORDER BY created_at DESC")
            .compactMap { try sessionRecord($0)?.session }
    }

    func insertSession(_ record: SessionRecord) async throws {
        let s = record.session
        try await rows(
            """
            INSERT INTO sessions (\(unescaped: Self.sessionColumns)) VALUES (\(s.id.description), \(s.userID.description),
              \(Data(record.tokenHash)), \(s.deviceName), \(s.createdAt.millisecondsSince1970), \(s.lastSeenAt.millisecondsSince1970),
              \(s.expiresAt.millisecondsSince1970))
            """)
    }

    func touchSession(_ id: SessionID, at: Date) async throws {
        try await rows("UPDATE sessions SET last_seen_at = \(at.millisecondsSince1970) WHERE id = \(id.description)")
    }

    func deleteSession(_ id: SessionID, of user: UserID) async throws -> Bool {
        try await !rows("DELETE FROM sessions WHERE id = \(id.description) AND user_id = \(user.description) RETURNING id").isEmpty
    }

    func deleteSessions(of user: UserID) async throws -> [SessionID] {
        try await rows("DELETE FROM sessions WHERE user_id = \(user.description) RETURNING id").compactMap { SessionID(try Columns($0).text(0)) }
    }

    func deleteExpiredSessions(before: Date) async throws -> Int {
        try await count(
            "WITH gone AS (DELETE FROM sessions WHERE expires_at < \(before.millisecondsSince1970) RETURNING 1) SELECT count(*) FROM gone")
    }

    // MARK: Chats

    private static let chatColumns =
        "c.id, c.kind, c.title, c.description, c.created_by, c.created_at, c.member_count, c.last_message_seq, c.last_activity_at"

    func chat(_ c: Columns, offset: Int = 0) throws -> Chat? {
        guard let id = ChatID(try c.text(offset)), let kind = ChatKind(rawValue: try c.text(offset + 1)),
            let createdBy = UserID(try c.text(offset + 4))
        else { return nil }
        return Chat(
            id: id, kind: kind, title: try c.text(offset + 2), description: try c.text(offset + 3), createdBy: createdBy,
            createdAt: try c.date(offset + 5), memberCount: Int(try c.int(offset + 6)), lastMessageSeq: try c.int(offset + 7),
            lastActivityAt: try c.date(offset + 8))
    }

    func chat(_ id: ChatID) async throws -> Chat? {
        try await rows("SELECT \(unescaped: Self.chatColumns) FROM chats c WHERE c.id = \(id.description)\(unescaped: forUpdate)")
            .first.flatMap { try chat(Columns($0)) }
    }

    func personalChat(between a: UserID, and b: UserID) async throws -> ChatID? {
        let pair = [a.description, b.description].sorted()
        return try await rows("SELECT id FROM chats WHERE unique_key = \("personal:\(pair[0]):\(pair[1])")").first
            .flatMap { ChatID(try Columns($0).text(0)) }
    }

    func notesChat(of user: UserID) async throws -> ChatID? {
        try await rows("SELECT id FROM chats WHERE unique_key = \("notes:\(user)")").first.flatMap { ChatID(try Columns($0).text(0)) }
    }

    func member(_ c: Columns, offset: Int = 0) throws -> ChatMember? {
        guard let userID = UserID(try c.text(offset)), let role = MemberRole(rawValue: try c.text(offset + 1)) else { return nil }
        return ChatMember(userID: userID, role: role, joinedAt: try c.date(offset + 2), readSeq: try c.int(offset + 3))
    }

    func member(_ user: UserID, of chat: ChatID) async throws -> ChatMember? {
        try await rows(
            "SELECT user_id, role, joined_at, read_seq FROM chat_members WHERE chat_id = \(chat.description) AND user_id = \(user.description)"
        ).first.flatMap { try member(Columns($0)) }
    }

    func members(of chat: ChatID) async throws -> [ChatMember] {
        try await rows(
            "SELECT user_id, role, joined_at, read_seq FROM chat_members WHERE chat_id = \(chat.description) ORDER BY joined_at, user_id"
        ).compactMap { try member(Columns($0)) }
    }

    /// One round trip: the two statements run inside a server-side function (migration 7).
    /// Not one statement: the chat row lock may wait for a transaction that changes the
    /// membership, and under READ COMMITTED everything one statement reads comes from the
    /// snapshot taken before that wait. The function's second statement starts after the lock,
    /// so it sees such a change.
    func sendingContext(chat chatID: ChatID, sender: UserID, clientMessageID: String?) async throws -> SendingContext? {
        if let deferred, case .answered(let context) = deferred.context(chat: chatID, sender: sender, clientMessageID: clientMessageID) {
            return context
        }
        guard
            let row = try await rows(
                """
                SELECT * FROM vestnik_sending_context(\(chatID.description), \(sender.description),
                  \(clientMessageID.map { Data($0.utf8) }), \(locking))
                """, preparedAs: SendingContextStatement.self
            ).first
        else { return nil }
        let c = Columns(row)
        guard let chat = try chat(c), let member = try member(c, offset: 9) else { return nil }
        var existing: Message?
        if let id = try c.optionalText(15).flatMap(MessageID.init) { existing = try await message(id) }
        return SendingContext(
            chat: chat, member: member, memberIDs: try c.texts(13).compactMap(UserID.init), existing: existing, mayHaveBots: try c.bool(14))
    }

    func memberIDs(of chat: ChatID) async throws -> [UserID] {
        try await rows("SELECT user_id FROM chat_members WHERE chat_id = \(chat.description)").compactMap { UserID(try Columns($0).text(0)) }
    }

    func chatList(of user: UserID) async throws -> [ChatListRow] {
        // One query for the rows with their peer and unread count (SQLite asks per row), one for
        // the last messages, one for their reactions.
        let found = try await rows(
            """
            SELECT \(unescaped: Self.chatColumns), m.user_id, m.role, m.joined_at, m.read_seq,
              CASE WHEN c.kind = 'personal' THEN
                (SELECT p.user_id FROM chat_members p WHERE p.chat_id = c.id AND p.user_id <> m.user_id LIMIT 1)
              END,
              (SELECT count(*) FROM messages u
                WHERE u.chat_id = c.id AND u.chat_seq > m.read_seq AND u.sender_id <> m.user_id AND u.deleted_at IS NULL
                  AND (u.extras_json IS NULL OR NOT (u.extras_json::jsonb ? 'recipients') OR (u.extras_json::jsonb -> 'recipients') ? m.user_id)),
              l.id
            FROM chat_members m JOIN chats c ON c.id = m.chat_id
            LEFT JOIN LATERAL (
              SELECT v.id FROM messages v
              WHERE v.chat_id = c.id AND (v.extras_json IS NULL OR NOT (v.extras_json::jsonb ? 'recipients') OR v.sender_id = m.user_id
                OR (v.extras_json::jsonb -> 'recipients') ? m.user_id)
              ORDER BY v.chat_seq DESC LIMIT 1
            ) l ON c.last_message_seq > 0
            WHERE m.user_id = \(user.description)
            ORDER BY c.last_activity_at DESC, c.id
            """)
        var partial: [(chat: Chat, member: ChatMember, peer: UserID?, unread: Int, last: MessageID?)] = []
        for row in found {
            let c = Columns(row)
            guard let listed = try chat(c), let membership = try member(c, offset: 9) else { continue }
            partial.append(
                (listed, membership, try c.optionalText(13).flatMap(UserID.init), Int(try c.int(14)), try c.optionalText(15).flatMap(MessageID.init)))
        }
        let lastIDs = partial.compactMap(\.last)
        var lastMessages: [MessageID: Message] = [:]
        if !lastIDs.isEmpty {
            for message in try await messages(
                self.rows("SELECT \(unescaped: Self.messageColumns) FROM messages WHERE id = ANY(\(lastIDs.map(\.description)))"))
            {
                lastMessages[message.id] = message
            }
        }
        return partial.map { entry in
            ChatListRow(
                chat: entry.chat, member: entry.member, peerID: entry.peer, lastMessage: entry.last.flatMap { lastMessages[$0] },
                unreadCount: entry.unread)
        }
    }

    func contacts(of user: UserID, limit: Int) async throws -> [UserID] {
        try await rows(
            """
            SELECT DISTINCT o.user_id FROM chat_members m
            JOIN chats c ON c.id = m.chat_id AND c.kind IN ('personal', 'group')
            JOIN chat_members o ON o.chat_id = m.chat_id AND o.user_id <> m.user_id
            WHERE m.user_id = \(user.description) LIMIT \(Int64(limit))
            """
        ).compactMap { UserID(try Columns($0).text(0)) }
    }

    func insertChat(_ chat: Chat, uniqueKey: String?) async throws {
        try await rows(
            """
            INSERT INTO chats (id, kind, title, description, created_by, created_at, member_count, last_message_seq,
              last_activity_at, unique_key) VALUES (\(chat.id.description), \(chat.kind.rawValue), \(chat.title), \(chat.description),
              \(chat.createdBy.description), \(chat.createdAt.millisecondsSince1970), \(Int64(chat.memberCount)), \(chat.lastMessageSeq),
              \(chat.lastActivityAt.millisecondsSince1970), \(uniqueKey))
            """)
    }

    func updateChat(_ chat: Chat) async throws {
        try await rows("UPDATE chats SET \(chatValues: chat) WHERE id = \(chat.id.description)")
    }

    func insertMember(_ member: ChatMember, into chat: ChatID) async throws {
        try await rows(
            """
            INSERT INTO chat_members (chat_id, user_id, role, joined_at, read_seq) VALUES (\(chat.description),
              \(member.userID.description), \(member.role.rawValue), \(member.joinedAt.millisecondsSince1970), \(member.readSeq))
            """)
    }

    func deleteMember(_ user: UserID, from chat: ChatID) async throws {
        try await rows("DELETE FROM chat_members WHERE chat_id = \(chat.description) AND user_id = \(user.description)")
    }

    func setRole(_ role: MemberRole, of user: UserID, in chat: ChatID) async throws {
        try await rows(
            "UPDATE chat_members SET role = \(role.rawValue) WHERE chat_id = \(chat.description) AND user_id = \(user.description)")
    }

    func setReadSeq(_ seq: Int64, of user: UserID, in chat: ChatID) async throws {
        // Never backwards.
        try await rows(
            """
            UPDATE chat_members SET read_seq = GREATEST(read_seq, \(seq))
            WHERE chat_id = \(chat.description) AND user_id = \(user.description)
            """)
    }

    // MARK: Messages

    private static let messageColumns = """
        id, chat_id, chat_seq, sender_id, text, reply_to, forward_json, mentions_json, created_at, edited_at, edit_count,
        deleted_at, pinned_at, client_message_id, extras_json
        """

    private func messages(_ rows: [PostgresRow]) async throws -> [Message] {
        var result: [Message] = []
        result.reserveCapacity(rows.count)
        let decoder = VestnikJSON.makeDecoder()
        for row in rows {
            let c = Columns(row)
            guard let id = MessageID(try c.text(0)), let chatID = ChatID(try c.text(1)), let sender = UserID(try c.text(3)) else { continue }
            let forward = try c.optionalText(6).map { try decoder.decode(ForwardOrigin.self, from: Data($0.utf8)) }
            let mentions = try c.optionalText(7).map { try decoder.decode([Mention].self, from: Data($0.utf8)) } ?? []
            let extras = try c.optionalText(14).map { try decoder.decode(MessageExtras.self, from: Data($0.utf8)) }
            var message =
                Message(
                    id: id, chatID: chatID, chatSeq: try c.int(2), senderID: sender, text: try c.utf8(4),
                    replyTo: try c.optionalText(5).flatMap(MessageID.init), forwardedFrom: forward, mentions: mentions,
                    createdAt: try c.date(8), editedAt: try c.optionalInt(9).map(Date.init(millisecondsSince1970:)),
                    editCount: Int(try c.int(10)), deletedAt: try c.optionalInt(11).map(Date.init(millisecondsSince1970:)),
                    reactions: [], pinned: try c.optionalInt(12) != nil, clientMessageID: try c.optionalUTF8(13))
            if let extras { message.extras = extras }
            result.append(message)
        }
        return try await attachReactions(result)
    }

    private func attachReactions(_ messages: [Message]) async throws -> [Message] {
        guard !messages.isEmpty else { return messages }
        // One array parameter, however many messages (SQLite chunks its `IN (?, …)` lists).
        let found = try await rows(
            """
            SELECT message_id, emoji, user_id FROM reactions WHERE message_id = ANY(\(messages.map(\.id.description)))
            ORDER BY message_id, created_at, emoji
            """)
        var reactionRows: [ReactionRow] = []
        for row in found {
            let c = Columns(row)
            guard let messageID = MessageID(try c.text(0)), let user = UserID(try c.text(2)) else { continue }
            reactionRows.append(ReactionRow(messageID: messageID, emoji: try c.text(1), userID: user))
        }
        return Message.attaching(reactionRows, to: messages)
    }

    func message(_ id: MessageID) async throws -> Message? {
        try await messages(rows("SELECT \(unescaped: Self.messageColumns) FROM messages WHERE id = \(id.description)")).first
    }

    func message(in chat: ChatID, sender: UserID, clientMessageID: String) async throws -> Message? {
        try await messages(
            rows(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages
                WHERE chat_id = \(chat.description) AND sender_id = \(sender.description) AND client_message_id = \(Data(clientMessageID.utf8))
                """)
        ).first
    }

    func message(chat: ChatID, chatSeq: Int64) async throws -> Message? {
        try await messages(
            rows("SELECT \(unescaped: Self.messageColumns) FROM messages WHERE chat_id = \(chat.description) AND chat_seq = \(chatSeq)")
        ).first
    }

    func messages(in chat: ChatID, _ direction: HistoryDirection, limit: Int, visibleTo viewer: UserID?) async throws -> [Message] {
        // Visibility (the rule of `Message.isVisible(to:)`, as SQLite's `visibleClause`): no
        // recipients, the viewer sent it, or `recipients` in `extras_json` names the viewer.
        // Without a viewer the first bound flag makes the whole condition true.
        let all = viewer == nil
        let me = viewer?.description ?? ""
        let found: [PostgresRow]
        switch direction {
        case .latest:
            found = try await rows(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages WHERE chat_id = \(chat.description)
                  AND (\(all) OR extras_json IS NULL OR NOT (extras_json::jsonb ? 'recipients') OR sender_id = \(me)
                    OR (extras_json::jsonb -> 'recipients') ? \(me))
                ORDER BY chat_seq DESC LIMIT \(Int64(limit))
                """
            ).reversed()
        case .before(let seq):
            found = try await rows(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages WHERE chat_id = \(chat.description) AND chat_seq < \(seq)
                  AND (\(all) OR extras_json IS NULL OR NOT (extras_json::jsonb ? 'recipients') OR sender_id = \(me)
                    OR (extras_json::jsonb -> 'recipients') ? \(me))
                ORDER BY chat_seq DESC LIMIT \(Int64(limit))
                """
            ).reversed()
        case .after(let seq):
            found = try await rows(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages WHERE chat_id = \(chat.description) AND chat_seq > \(seq)
                  AND (\(all) OR extras_json IS NULL OR NOT (extras_json::jsonb ? 'recipients') OR sender_id = \(me)
                    OR (extras_json::jsonb -> 'recipients') ? \(me))
                ORDER BY chat_seq ASC LIMIT \(Int64(limit))
                """)
        }
        return try await messages(found)
    }

    func pinnedMessages(in chat: ChatID) async throws -> [Message] {
        try await messages(
            rows(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages WHERE chat_id = \(chat.description) AND pinned_at IS NOT NULL
                ORDER BY pinned_at, chat_seq
                """))
    }

    func edits(of message: MessageID) async throws -> [MessageEdit] {
        try await rows(
            """
            SELECT 0::int8, text, created_at FROM messages WHERE id = \(message.description) AND edit_count = 0 AND deleted_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM message_versions WHERE message_id = \(message.description) AND version = 0)
            UNION ALL SELECT version::int8, text, created_at FROM message_versions WHERE message_id = \(message.description) ORDER BY 1
            """)
            .map { row in
                let c = Columns(row)
                return MessageEdit(version: Int(try c.int(0)), text: try c.utf8(1), editedAt: try c.date(2))
            }
    }

    func reactions(of message: MessageID) async throws -> [ReactionSummary] {
        guard let found = try await self.message(message) else { return [] }
        return found.reactions
    }

    func unreadCount(in chat: ChatID, for user: UserID, after readSeq: Int64) async throws -> Int {
        try await count(
            """
            SELECT count(*) FROM messages
            WHERE chat_id = \(chat.description) AND chat_seq > \(readSeq) AND sender_id <> \(user.description) AND deleted_at IS NULL
              AND (extras_json IS NULL OR NOT (extras_json::jsonb ? 'recipients') OR (extras_json::jsonb -> 'recipients') ? \(user.description))
            """)
    }

    func readers(of chat: ChatID, atLeast chatSeq: Int64) async throws -> [UserID] {
        try await rows(
            "SELECT user_id FROM chat_members WHERE chat_id = \(chat.description) AND read_seq >= \(chatSeq) ORDER BY user_id"
        ).compactMap { UserID(try Columns($0).text(0)) }
    }

    func insertMessage(_ m: Message) async throws {
        let row = try NewMessageRow(m)
        // No version row: an unedited message's only version is the row itself (see `edits(of:)`).
        try await rows("INSERT INTO messages (\(unescaped: Self.messageInsertColumns)) VALUES \(row)")
    }

    /// Everything a send stores, in one statement (one round trip instead of seven): the chat
    /// row, the message, the reader's position, the log counter and the event
    /// with its notification. The statement's parts run in an order PostgreSQL chooses, except
    /// that the audience is looked up (and key-share locked) only after the counter row is
    /// locked, as `pruneEvents` needs (see there). A recipient set seen for the first time is not
    /// found: the event is then inserted afterwards, with the position this statement took.
    func insertMessage(_ m: Message, updating chat: Chat, readBy reader: UserID?, announcing entry: LogEntry) async throws -> EventSeq {
        let row = try NewMessageRow(m)
        if let deferred, let seq = deferred.hold(row, updating: chat, readBy: reader, announcing: entry) { return EventSeq(seq) }
        guard
            let row = try await rows(
                """
                WITH chat AS (UPDATE chats SET \(chatValues: chat) WHERE id = \(chat.id.description)),
                message AS (INSERT INTO messages (\(unescaped: Self.messageInsertColumns)) VALUES \(row)),
                reader AS (
                  UPDATE chat_members SET read_seq = GREATEST(read_seq, \(m.chatSeq))
                  WHERE chat_id = \(chat.id.description) AND user_id = \(reader?.description)
                ),
                head AS (UPDATE log_state SET head_seq = head_seq + 1 WHERE id = 1 RETURNING head_seq),
                audience AS (
                  SELECT id FROM event_audiences
                  WHERE digest = \(entry.audience.digest) AND (SELECT head_seq FROM head) IS NOT NULL
                  FOR KEY SHARE
                ),
                logged AS (
                  INSERT INTO events (seq, created_at, payload, audience_id)
                  SELECT head.head_seq, \(entry.at.millisecondsSince1970), \(entry.payload), audience.id FROM head, audience
                  RETURNING seq
                )
                SELECT head.head_seq,
                  (SELECT count(*) FROM (SELECT pg_notify(\(PostgresStore.eventChannel), logged.seq::text || ' ' || \(origin)) FROM logged) AS notified)
                FROM head
                """, preparedAs: InsertMessageStatement.self
            ).first
        else { throw StoreError.backend("log_state row missing") }
        let columns = Columns(row)
        let head = try columns.int(0)
        if try columns.int(1) == 0 {
            try await insertEvent(seq: head, payload: entry.payload, audienceID: try await storedAudience(entry.audience, at: entry.at), at: entry.at)
        }
        return EventSeq(head)
    }

    private enum SendingContextStatement: PreparedSite { static let statementName = "sending_context" }
    private enum InsertMessageStatement: PreparedSite { static let statementName = "insert_message" }

    static let messageInsertColumns = """
        id, chat_id, chat_seq, sender_id, text, reply_to, forward_json, mentions_json, created_at, edit_count, client_message_id, extras_json
        """

    func recordEdit(of message: MessageID, text: String, mentions: [Mention], version: Int, at: Date) async throws -> Bool {
        let mentionsJSON = mentions.isEmpty ? nil : String(decoding: try VestnikJSON.encode(mentions), as: UTF8.self)
        // The first edit keeps the original as version 0 before it is overwritten.
        try await rows(
            """
            INSERT INTO message_versions (message_id, version, text, created_at)
            SELECT id, 0, text, created_at FROM messages WHERE id = \(message.description) AND edit_count = 0 AND deleted_at IS NULL
            ON CONFLICT DO NOTHING
            """)
        // Under READ COMMITTED the condition is re-checked on the newest row version after a
        // concurrent delete commits, so the edit cannot bring a tombstone back.
        let updated = try await rows(
            """
            UPDATE messages SET text = \(Data(text.utf8)), mentions_json = \(mentionsJSON), edited_at = \(at.millisecondsSince1970),
              edit_count = \(Int64(version))
            WHERE id = \(message.description) AND deleted_at IS NULL RETURNING 1
            """)
        guard !updated.isEmpty else { return false }
        try await rows(
            """
            INSERT INTO message_versions (message_id, version, text, created_at)
            VALUES (\(message.description), \(Int64(version)), \(Data(text.utf8)), \(at.millisecondsSince1970))
            """)
        return true
    }

    func markDeleted(_ message: MessageID, at: Date, keepingRecipients recipients: [UserID]?) async throws {
        // Delete for everyone: the text and every earlier version go; the row stays as a tombstone.
        let extras = try recipients.map { String(decoding: try VestnikJSON.encode(MessageExtras(recipients: $0)), as: UTF8.self) }
        try await rows(
            """
            UPDATE messages SET text = \(Data()), mentions_json = NULL, extras_json = \(extras), deleted_at = \(at.millisecondsSince1970),
              pinned_at = NULL
            WHERE id = \(message.description)
            """)
        try await rows("DELETE FROM message_versions WHERE message_id = \(message.description)")
        try await rows("DELETE FROM reactions WHERE message_id = \(message.description)")
        try await rows("DELETE FROM message_expiry WHERE message_id = \(message.description)")
    }

    func addReaction(_ emoji: String, by user: UserID, to message: MessageID, at: Date) async throws -> Bool {
        try await !rows(
            """
            INSERT INTO reactions (message_id, emoji, user_id, created_at)
            VALUES (\(message.description), \(emoji), \(user.description), \(at.millisecondsSince1970))
            ON CONFLICT DO NOTHING RETURNING 1
            """
        ).isEmpty
    }

    func removeReaction(_ emoji: String, by user: UserID, from message: MessageID) async throws -> Bool {
        try await !rows(
            """
            DELETE FROM reactions WHERE message_id = \(message.description) AND emoji = \(emoji) AND user_id = \(user.description)
            RETURNING 1
            """
        ).isEmpty
    }

    func setPinned(_ pinned: Bool, message: MessageID, at: Date) async throws {
        let pinnedAt: Int64? = pinned ? at.millisecondsSince1970 : nil
        try await rows("UPDATE messages SET pinned_at = \(pinnedAt) WHERE id = \(message.description)")
    }

    // MARK: Event log

    func appendEvent(_ event: ServerEvent, payload: Data, audience: EventAudience, at: Date) async throws -> EventSeq {
        // The counter row is advanced inside this transaction and stays locked until it ends, so
        // event-producing transactions serialize on it: positions commit in order, without gaps
        // (docs/decisions/0001-ordered-event-log.md).
        guard let row = try await rows("UPDATE log_state SET head_seq = head_seq + 1 WHERE id = 1 RETURNING head_seq").first else {
            throw StoreError.backend("log_state row missing")
        }
        let head = try Columns(row).int(0)
        try await insertEvent(seq: head, payload: payload, audienceID: try await storedAudience(audience, at: at), at: at)
        return EventSeq(head)
    }

    /// Inserts the event at position `seq` (already taken from the counter) and announces it.
    ///
    /// The notification is delivered to listeners on commit only (never for a rolled-back
    /// transaction). It carries the position only: listeners read the log, which stays the
    /// source of truth.
    func insertEvent(seq: Int64, payload: Data, audienceID: Int64, at: Date) async throws {
        try await rows(
            """
            WITH logged AS (
                INSERT INTO events (seq, created_at, payload, audience_id)
                VALUES (\(seq), \(at.millisecondsSince1970), \(payload), \(audienceID)) RETURNING seq
            )
            SELECT pg_notify(\(PostgresStore.eventChannel), seq::text || ' ' || \(origin)) FROM logged
            """)
    }

    /// The id of the stored audience for this recipient set, storing it the first time.
    ///
    /// `FOR KEY SHARE` keeps a found audience from being pruned before this transaction's event
    /// refers to it; a prune that won the race makes the lookup come back empty and the audience
    /// is stored again. Two nodes storing the same new set meet on the unique digest: the second
    /// waits for the first and takes its row (`xmax <> 0`), whose members the first inserted.
    func storedAudience(_ audience: EventAudience, at: Date) async throws -> Int64 {
        if let row = try await rows("SELECT id FROM event_audiences WHERE digest = \(audience.digest) FOR KEY SHARE").first {
            return try Columns(row).int(0)
        }
        guard let row = try await rows(
            """
            INSERT INTO event_audiences (digest, created_at) VALUES (\(audience.digest), \(at.millisecondsSince1970))
            ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest
            RETURNING id, (xmax = 0) AS inserted
            """
        ).first else { throw StoreError.backend("audience insert returned no id") }
        let columns = Columns(row)
        let id = try columns.int(0)
        if try columns.bool(1), !audience.members.isEmpty {
            try await rows(
                """
                INSERT INTO event_audience_members (user_id, audience_id)
                SELECT m, \(id) FROM unnest(\(audience.members.map(\.description))::text[]) AS m
                """)
        }
        return id
    }

    func pruneEvents(before: Date, limit: Int) async throws -> Int {
        guard limit > 0 else { return 0 }
        // The log's counter row first, as every send takes it first: a send on another node
        // that holds it and is about to reuse an orphaned audience must not wait for this
        // prune while this prune waits for its counter row (a deadlock).
        try await rows("SELECT 1 FROM log_state WHERE id = 1 FOR UPDATE")
        // Among the `limit` oldest entries, the newest one that expired: everything up to it
        // goes. Reading only those keeps a batch's cost to its size, however long the log. The
        // scan starts at `oldest_seq`, not at the index's first entry: the entries earlier
        // batches deleted stay in the index until vacuumed, and each batch would walk them again.
        guard
            let row = try await rows(
                """
                SELECT max(seq) FROM (
                  SELECT seq, created_at FROM events WHERE seq >= (SELECT oldest_seq FROM log_state WHERE id = 1)
                  ORDER BY seq LIMIT \(Int64(limit))
                ) AS oldest
                WHERE created_at < \(before.millisecondsSince1970)
                """
            ).first,
            let upTo = try Columns(row).optionalInt(0)
        else { return 0 }
        guard
            let gone = try await rows(
                """
                WITH gone AS (
                  DELETE FROM events WHERE seq >= (SELECT oldest_seq FROM log_state WHERE id = 1) AND seq <= \(upTo) RETURNING audience_id
                )
                SELECT count(*), COALESCE(array_agg(DISTINCT audience_id) FILTER (WHERE audience_id IS NOT NULL), '{}') FROM gone
                """
            ).first
        else { return 0 }
        let columns = Columns(gone)
        // The audiences of the deleted entries that no entry refers to any more (their members
        // go with them). Sends wait for the counter row this transaction holds, so none can be
        // reusing one meanwhile.
        try await rows(
            "DELETE FROM event_audiences a WHERE a.id = ANY(\(try columns.ints(1))::int8[]) AND NOT EXISTS (SELECT 1 FROM events e WHERE e.audience_id = a.id)"
        )
        try await rows("UPDATE log_state SET oldest_seq = GREATEST(oldest_seq, \(upTo + 1)) WHERE id = 1")
        return Int(try columns.int(0))
    }

    /// A user's events after `since`: the first `limit` positions of each of their audiences
    /// (read from the `events(audience_id, seq)` index alone), merged; payloads only for the
    /// page itself.
    func events(for user: UserID, after since: EventSeq, limit: Int) async throws -> [LoggedEvent] {
        try await rows(
            """
            SELECT e.seq, e.payload FROM events e
            WHERE e.seq IN (
                SELECT x.seq FROM event_audience_members m
                CROSS JOIN LATERAL (
                    SELECT seq FROM events
                    WHERE audience_id = m.audience_id AND seq > \(since.value) ORDER BY seq LIMIT \(Int64(limit))
                ) x
                WHERE m.user_id = \(user.description)
                ORDER BY x.seq LIMIT \(Int64(limit))
            )
            ORDER BY e.seq
            """
        ).map { row in
            let c = Columns(row)
            return LoggedEvent(seq: EventSeq(try c.int(0)), payload: try c.bytes(1))
        }
    }

    func oldestRetainedSeq() async throws -> EventSeq {
        guard let row = try await rows("SELECT oldest_seq FROM log_state WHERE id = 1").first else { return EventSeq(1) }
        return EventSeq(try Columns(row).int(0))
    }

    func headSeq() async throws -> EventSeq {
        guard let row = try await rows("SELECT head_seq FROM log_state WHERE id = 1").first else { return .zero }
        return EventSeq(try Columns(row).int(0))
    }

    /// Events in `(after, through]` with their recipients, for the fan-out's gap filling.
    /// One statement, so one snapshot without a transaction block, prepared: every node runs it
    /// for every batch another node commits (its catch-up after each notification). Each
    /// audience's members come once, on the first of the page's events that has it.
    func committedEvents(after: EventSeq, through: EventSeq, limit: Int) async throws -> [CommittedEvent] {
        let found = try await rows(
            """
            SELECT page.seq, page.payload, page.audience_id,
                CASE WHEN page.audience_id IS NOT NULL AND row_number() OVER (PARTITION BY page.audience_id ORDER BY page.seq) = 1
                    THEN ARRAY(SELECT m.user_id FROM event_audience_members m WHERE m.audience_id = page.audience_id) END
            FROM (SELECT seq, payload, audience_id FROM events WHERE seq > \(after.value) AND seq <= \(through.value) ORDER BY seq LIMIT \(Int64(limit))) page
            ORDER BY page.seq
            """, preparedAs: CommittedEventsStatement.self)
        var members: [Int64: [UserID]] = [:]
        let decoder = VestnikJSON.makeDecoder()
        var result: [CommittedEvent] = []
        for row in found {
            let c = Columns(row)
            let seq = try c.int(0)
            let payload = try c.bytes(1)
            let audience = try c.optionalInt(2)
            if let audience, let ids = try c.optionalTexts(3) { members[audience] = ids.compactMap(UserID.init) }
            // As in SQLite: an undecodable payload (written by a newer binary) is skipped.
            guard let event = try? decoder.decode(ServerEvent.self, from: payload) else { continue }
            result.append(CommittedEvent(seq: EventSeq(seq), event: event, recipients: audience.flatMap { members[$0] } ?? [], payload: payload))
        }
        return result
    }

    private enum CommittedEventsStatement: PreparedSite { static let statementName = "committed_events" }

    // MARK: Bots

    private static let botColumns =
        "b.id, b.url, b.sealed_secret, b.allowed_data, b.enabled, b.description, b.status, b.status_at, b.commands_json, b.created_at, b.secret_format, b.permissions"

    private func botRecord(_ row: PostgresRow) throws -> BotRecord? {
        let c = Columns(row)
        guard let id = UserID(try c.text(0)) else { return nil }
        return BotRecord(
            id: id, url: try c.text(1), sealedSecret: try c.bytes(2), allowedData: BotAllowedData(rawValue: try c.text(3)) ?? .commands,
            enabled: try c.bool(4), description: try c.text(5), status: try c.optionalText(6),
            statusAt: try c.optionalInt(7).map(Date.init(millisecondsSince1970:)),
            commands: try VestnikJSON.decode([BotCommand].self, from: Data(try c.text(8).utf8)), createdAt: try c.date(9),
            secretFormat: Int(try c.int(10)), permissions: BotPermission.parseList(try c.text(11)) ?? [])
    }

    func bot(_ id: UserID) async throws -> BotRecord? {
        try await rows("SELECT \(unescaped: Self.botColumns) FROM bots b WHERE b.id = \(id.description)\(unescaped: forUpdate)")
            .first.flatMap { try botRecord($0) }
    }

    func bots() async throws -> [BotRecord] {
        try await rows("SELECT \(unescaped: Self.botColumns) FROM bots b JOIN users u ON u.id = b.id ORDER BY u.display_name, b.id")
            .compactMap { try botRecord($0) }
    }

    func botMembers(of chat: ChatID) async throws -> [BotRecord] {
        try await rows(
            """
            SELECT \(unescaped: Self.botColumns) FROM chat_members m JOIN bots b ON b.id = m.user_id
            WHERE m.chat_id = \(chat.description) ORDER BY b.id
            """
        ).compactMap { try botRecord($0) }
    }

    func setExtras(_ extras: MessageExtras, of message: MessageID) async throws -> Bool {
        let json = extras.isEmpty ? nil : String(decoding: try VestnikJSON.encode(extras), as: UTF8.self)
        return try await !rows(
            "UPDATE messages SET extras_json = \(json) WHERE id = \(message.description) AND deleted_at IS NULL RETURNING 1"
        ).isEmpty
    }

    func insertBot(_ b: BotRecord) async throws {
        let commands = String(decoding: try VestnikJSON.encode(b.commands), as: UTF8.self)
        try await rows(
            """
            INSERT INTO bots (id, url, sealed_secret, allowed_data, enabled, description, status, status_at, commands_json, created_at,
              secret_format, permissions)
            VALUES (\(b.id.description), \(b.url), \(b.sealedSecret), \(b.allowedData.rawValue), \(b.enabled), \(b.description), \(b.status),
              \(b.statusAt?.millisecondsSince1970), \(commands), \(b.createdAt.millisecondsSince1970), \(Int64(b.secretFormat)),
              \(BotPermission.listString(b.permissions)))
            """)
    }

    func updateBot(_ b: BotRecord) async throws {
        let commands = String(decoding: try VestnikJSON.encode(b.commands), as: UTF8.self)
        try await rows(
            """
            UPDATE bots SET url = \(b.url), sealed_secret = \(b.sealedSecret), allowed_data = \(b.allowedData.rawValue), enabled = \(b.enabled),
              description = \(b.description), status = \(b.status), status_at = \(b.statusAt?.millisecondsSince1970), commands_json = \(commands),
              secret_format = \(Int64(b.secretFormat)), permissions = \(BotPermission.listString(b.permissions))
            WHERE id = \(b.id.description)
            """)
    }

    // MARK: Login attempts (run by `PostgresStore` outside a transaction block, each statement
    // committing by itself; `now` nil is the database server's clock)

    /// The time in ms since 1970: `now`, or the database server's at the statement's start.
    private static func milliseconds(_ now: Date?) -> Int64? { now?.millisecondsSince1970 }

    func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Date?) async throws -> AttemptCount {
        let now = Self.milliseconds(now)
        let spacing = limit.spacingMilliseconds
        let headroom = limit.headroomMilliseconds
        // On a conflict the row is locked and the condition evaluated again on its newest
        // version (READ COMMITTED), so nodes counting one key at once take turns. The lock ends
        // with this statement: it runs outside any transaction block.
        let counted = try await rows(
            """
            WITH t AS (SELECT COALESCE(\(now)::int8, (extract(epoch FROM statement_timestamp()) * 1000)::int8) AS now)
            INSERT INTO login_attempts AS a (key_hash, spent_until) SELECT \(key.hex), t.now + \(spacing) FROM t
            ON CONFLICT (key_hash) DO UPDATE SET spent_until = GREATEST(a.spent_until, (SELECT now FROM t)) + \(spacing)
            WHERE GREATEST(a.spent_until, (SELECT now FROM t)) <= (SELECT now FROM t) + \(headroom)
            RETURNING a.spent_until
            """)
        if let row = counted.first { return .counted(until: Date(millisecondsSince1970: try Columns(row).int(0))) }
        let wait = try await rows(
            """
            SELECT spent_until - \(headroom) - COALESCE(\(now)::int8, (extract(epoch FROM statement_timestamp()) * 1000)::int8)
            FROM login_attempts WHERE key_hash = \(key.hex)
            """
        ).first.map { try Columns($0).int(0) } ?? 0
        return .refused(wait: Double(max(0, wait)) / 1000)
    }

    func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Date, at now: Date?) async throws {
        try await rows(
            """
            UPDATE login_attempts SET spent_until = spent_until - \(limit.spacingMilliseconds)
            WHERE key_hash = \(key.hex)
              AND \(countedUntil.millisecondsSince1970) > COALESCE(\(Self.milliseconds(now))::int8, (extract(epoch FROM statement_timestamp()) * 1000)::int8)
            """)
    }

    func forgetAttempts(under key: AttemptKey) async throws {
        try await rows("DELETE FROM login_attempts WHERE key_hash = \(key.hex)")
    }

    func pruneAttempts(before now: Date?, limit: Int) async throws -> Int {
        // The condition is repeated outside: a count that moved a chosen row on while the DELETE
        // waited for it is seen there (READ COMMITTED checks the outer condition again on the new
        // version) and kept. Rows another node's prune or a count holds are skipped.
        try await count(
            """
            WITH t AS (SELECT COALESCE(\(Self.milliseconds(now))::int8, (extract(epoch FROM statement_timestamp()) * 1000)::int8) AS now),
            gone AS (
                DELETE FROM login_attempts WHERE key_hash IN (
                    SELECT key_hash FROM login_attempts WHERE spent_until < (SELECT now FROM t)
                    LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED)
                AND spent_until < (SELECT now FROM t)
                RETURNING 1)
            SELECT count(*) FROM gone
            """)
    }

    func claimServerKeyFingerprint(_ fingerprint: String, name: String) async throws -> String {
        // Two nodes starting at once: the second insert waits for the first to commit, then does
        // nothing, and the SELECT (a new snapshot under READ COMMITTED) sees the winner.
        try await rows("INSERT INTO server_keys (name, fingerprint) VALUES (\(name), \(fingerprint)) ON CONFLICT (name) DO NOTHING")
        guard let row = try await rows("SELECT fingerprint FROM server_keys WHERE name = \(name)").first else { return fingerprint }
        return try Columns(row).text(0)
    }

    func deleteBot(_ id: UserID) async throws {
        try await rows("DELETE FROM bot_outbox WHERE bot_id = \(id.description)")
        try await rows("DELETE FROM bots WHERE id = \(id.description)")
    }

    func enqueueBotJob(_ job: BotJobRecord) async throws {
        try await rows(
            """
            INSERT INTO bot_outbox (id, bot_id, job, attempts, next_attempt_at, created_at)
            VALUES (\(job.id.uuidString.lowercased()), \(job.botID.description), \(try VestnikJSON.encode(job.job)), \(Int64(job.attempts)),
              \(job.nextAttemptAt.millisecondsSince1970), \(job.createdAt.millisecondsSince1970))
            """)
    }

    func claimBotJobs(now: Date, leaseUntil: Date, limit: Int, perBot: Int, skipping busyBots: [UserID]) async throws -> [BotJobRecord] {
        // SKIP LOCKED: nodes claiming at the same time take disjoint jobs instead of waiting. The
        // per-bot cap (a window over the due jobs) keeps one bot's backlog from filling a claim.
        let found = try await rows(
            """
            SELECT id, bot_id, job, attempts, created_at FROM bot_outbox
            WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY bot_id ORDER BY next_attempt_at, created_at) AS place FROM bot_outbox
                    WHERE next_attempt_at <= \(now.millisecondsSince1970) AND NOT (bot_id = ANY(\(busyBots.map(\.description))))
                ) ranked WHERE place <= \(Int64(max(1, perBot)))
            )
            ORDER BY next_attempt_at, created_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
            """)
        var claimed: [BotJobRecord] = []
        for row in found {
            let c = Columns(row)
            guard let id = UUID(uuidString: try c.text(0)), let bot = UserID(try c.text(1)) else { continue }
            let job = try VestnikJSON.decode(BotJob.self, from: try c.bytes(2))
            try await rows("UPDATE bot_outbox SET next_attempt_at = \(leaseUntil.millisecondsSince1970) WHERE id = \(try c.text(0))")
            claimed.append(BotJobRecord(id: id, botID: bot, job: job, attempts: Int(try c.int(3)), nextAttemptAt: leaseUntil, createdAt: try c.date(4)))
        }
        return claimed
    }

    func deleteBotJob(_ id: UUID) async throws {
        try await rows("DELETE FROM bot_outbox WHERE id = \(id.uuidString.lowercased())")
    }

    func rescheduleBotJob(_ id: UUID, attempts: Int, at: Date, error: String) async throws {
        try await rows(
            """
            UPDATE bot_outbox SET attempts = \(Int64(attempts)), next_attempt_at = \(at.millisecondsSince1970), last_error = \(String(error.prefix(500)))
            WHERE id = \(id.uuidString.lowercased())
            """)
    }

    func stealth(of chat: ChatID) async throws -> StealthSettings? {
        guard let row = try await rows("SELECT burn_in, expire_in, disable_web FROM chat_stealth WHERE chat_id = \(chat.description)").first
        else { return nil }
        let c = Columns(row)
        return StealthSettings(burnIn: try c.optionalInt(0).map(Int.init), expireIn: try c.optionalInt(1).map(Int.init), disableWeb: try c.bool(2))
    }

    func setStealth(_ settings: StealthSettings?, for chat: ChatID) async throws {
        try await rows("DELETE FROM chat_stealth WHERE chat_id = \(chat.description)")
        guard let settings else { return }
        try await rows(
            """
            INSERT INTO chat_stealth (chat_id, burn_in, expire_in, disable_web)
            VALUES (\(chat.description), \(settings.burnIn.map(Int64.init)), \(settings.expireIn.map(Int64.init)), \(settings.disableWeb))
            """)
    }

    func setExpiry(_ at: Date?, of message: MessageID) async throws {
        try await rows("DELETE FROM message_expiry WHERE message_id = \(message.description)")
        guard let at else { return }
        try await rows("INSERT INTO message_expiry (message_id, expires_at) VALUES (\(message.description), \(at.millisecondsSince1970))")
    }

    func expiredMessages(before now: Date, limit: Int) async throws -> [MessageID] {
        try await rows(
            "SELECT message_id FROM message_expiry WHERE expires_at <= \(now.millisecondsSince1970) ORDER BY expires_at LIMIT \(Int64(limit))"
        ).compactMap { MessageID(try Columns($0).text(0)) }
    }

    func hasDueBotJobs(now: Date) async throws -> Bool {
        try await !rows("SELECT 1 FROM bot_outbox WHERE next_attempt_at <= \(now.millisecondsSince1970) LIMIT 1").isEmpty
    }

    func pendingBotJobs(of bot: UserID) async throws -> Int {
        try await count("SELECT count(*) FROM bot_outbox WHERE bot_id = \(bot.description)")
    }
}


/// A new message's column values, encoded for ``PostgresAccess``'s `messageInsertColumns`.
/// Encoding can fail, so it happens here rather than inside a query's interpolation.
struct NewMessageRow {
    let message: Message
    let forward: String?
    let mentions: String?
    let extras: String?

    init(_ message: Message) throws {
        self.message = message
        forward = try message.forwardedFrom.map { String(decoding: try VestnikJSON.encode($0), as: UTF8.self) }
        mentions = message.mentions.isEmpty ? nil : String(decoding: try VestnikJSON.encode(message.mentions), as: UTF8.self)
        extras = message.extras.isEmpty ? nil : String(decoding: try VestnikJSON.encode(message.extras), as: UTF8.self)
    }
}

extension PostgresQuery.StringInterpolation {
    /// `(…)`: a `VALUES` row for a new message.
    mutating func appendInterpolation(_ row: NewMessageRow) throws {
        let m = row.message
        appendLiteral("(")
        appendInterpolation(m.id.description)
        appendLiteral(", ")
        appendInterpolation(m.chatID.description)
        appendLiteral(", ")
        appendInterpolation(m.chatSeq)
        appendLiteral(", ")
        appendInterpolation(m.senderID.description)
        appendLiteral(", ")
        try appendInterpolation(Data(m.text.utf8))
        appendLiteral(", ")
        appendInterpolation(m.replyTo?.description)
        appendLiteral(", ")
        appendInterpolation(row.forward)
        appendLiteral(", ")
        appendInterpolation(row.mentions)
        appendLiteral(", ")
        appendInterpolation(m.createdAt.millisecondsSince1970)
        appendLiteral(", 0, ")
        try appendInterpolation(m.clientMessageID.map { Data($0.utf8) })
        appendLiteral(", ")
        appendInterpolation(row.extras)
        appendLiteral(")")
    }

    /// `title = …, …`: the `SET` list that writes back a chat's changeable columns.
    mutating func appendInterpolation(chatValues chat: Chat) {
        appendLiteral("title = ")
        appendInterpolation(chat.title)
        appendLiteral(", description = ")
        appendInterpolation(chat.description)
        appendLiteral(", member_count = ")
        appendInterpolation(Int64(chat.memberCount))
        appendLiteral(", last_message_seq = ")
        appendInterpolation(chat.lastMessageSeq)
        appendLiteral(", last_activity_at = ")
        appendInterpolation(chat.lastActivityAt.millisecondsSince1970)
    }
}
