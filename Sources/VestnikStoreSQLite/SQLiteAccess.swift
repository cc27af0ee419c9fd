import Foundation
import VestnikCore
import VestnikModel

/// The store's queries and changes over one checked-out connection, inside a transaction the
/// caller opened.
struct SQLiteAccess: StoreWriter {
    let box: ConnectionBox
    private var db: SQLiteConnection { box.connection }

    // MARK: Users

    private static let userColumns =
        "id, login, display_name, email, department, position, is_admin, is_blocked, created_at, password_hash, kind"

    private func userRecord(_ row: SQLRow) -> UserRecord? {
        guard let id = UserID(row.text(0)) else { return nil }
        let user = User(
            id: id, login: row.text(1), displayName: row.text(2), email: row.optionalText(3), department: row.optionalText(4),
            position: row.optionalText(5), isAdmin: row.int(6) != 0, isBlocked: row.int(7) != 0,
            createdAt: Date(millisecondsSince1970: row.int(8)), kind: UserKind(rawValue: row.text(10)) ?? .user)
        return UserRecord(user: user, passwordHash: row.optionalText(9))
    }

    func user(_ id: UserID) async throws -> UserRecord? {
        try db.query("SELECT \(Self.userColumns) FROM users WHERE id = ?", [.text(id.description)]).first.flatMap(userRecord)
    }

    func user(login: String) async throws -> UserRecord? {
        try db.query("SELECT \(Self.userColumns) FROM users WHERE login = ?", [.text(login)]).first.flatMap(userRecord)
    }

    func users(_ ids: [UserID]) async throws -> [User] {
        var result: [User] = []
        for id in ids {
            if let record = try await user(id) { result.append(record.user) }
        }
        return result
    }

    func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        try db.query(
            "SELECT \(Self.userColumns) FROM users WHERE instr(search_text, ?) > 0 ORDER BY display_name, login LIMIT ?",
            [.text(query), .integer(Int64(limit))]
        ).compactMap { userRecord($0)?.user }
    }

    func users(email: String, limit: Int) async throws -> [User] {
        // `lower()` folds ASCII only, like PostgreSQL's under the "C" collation; the expression
        // matches the `users_by_email` index of migration 4.
        try db.query(
            "SELECT \(Self.userColumns) FROM users WHERE lower(email) = ? ORDER BY login LIMIT ?", [.text(email), .integer(Int64(limit))]
        ).compactMap { userRecord($0)?.user }
    }

    func allUsers(limit: Int, offset: Int) async throws -> [User] {
        try db.query(
            "SELECT \(Self.userColumns) FROM users ORDER BY login LIMIT ? OFFSET ?", [.integer(Int64(limit)), .integer(Int64(offset))]
        ).compactMap { userRecord($0)?.user }
    }

    func insertUser(_ record: UserRecord, searchText: String) async throws {
        let u = record.user
        try db.query(
            "INSERT INTO users (\(Self.userColumns), search_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(u.id.description), .text(u.login), .text(u.displayName), optional(u.email), optional(u.department),
                optional(u.position), .integer(u.isAdmin ? 1 : 0), .integer(u.isBlocked ? 1 : 0), .integer(u.createdAt.millisecondsSince1970),
                optional(record.passwordHash), .text(u.kind.rawValue), .text(searchText),
            ])
    }

    func updateUser(_ u: User, searchText: String) async throws {
        try db.query(
            """
            UPDATE users SET display_name = ?, email = ?, department = ?, position = ?, is_admin = ?, is_blocked = ?,
            search_text = ? WHERE id = ?
            """,
            [
                .text(u.displayName), optional(u.email), optional(u.department), optional(u.position), .integer(u.isAdmin ? 1 : 0),
                .integer(u.isBlocked ? 1 : 0), .text(searchText), .text(u.id.description),
            ])
    }

    func setPasswordHash(_ hash: String, for user: UserID) async throws {
        try db.query("UPDATE users SET password_hash = ? WHERE id = ?", [.text(hash), .text(user.description)])
    }

    // MARK: Sessions

    private func sessionRecord(_ row: SQLRow) -> SessionRecord? {
        guard let id = SessionID(row.text(0)), let userID = UserID(row.text(1)) else { return nil }
        let session = Session(
            id: id, userID: userID, deviceName: row.text(3), createdAt: Date(millisecondsSince1970: row.int(4)),
            lastSeenAt: Date(millisecondsSince1970: row.int(5)), expiresAt: Date(millisecondsSince1970: row.int(6)))
        return SessionRecord(session: session, tokenHash: row.blob(2))
    }

    private static let sessionColumns = "id, user_id, token_hash, device_name, created_at, last_seen_at, expires_at"

    func session(tokenHash: [UInt8]) async throws -> SessionRecord? {
        try db.query("SELECT \(Self.sessionColumns) FROM sessions WHERE token_hash = ?", [.blob(tokenHash)]).first.flatMap(sessionRecord)
    }

    func sessions(of user: UserID) async throws -> [Session] {
        try db.query(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE user_id = ? ORDER BY created_at DESC", [.text(user.description)]
        ).compactMap { sessionRecord($0)?.session }
    }

    func insertSession(_ record: SessionRecord) async throws {
        let s = record.session
        try db.query(
            "INSERT INTO sessions (\(Self.sessionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                .text(s.id.description), .text(s.userID.description), .blob(record.tokenHash), .text(s.deviceName),
                .integer(s.createdAt.millisecondsSince1970), .integer(s.lastSeenAt.millisecondsSince1970),
                .integer(s.expiresAt.millisecondsSince1970),
            ])
    }

    func touchSession(_ id: SessionID, at: Date) async throws {
        try db.query("UPDATE sessions SET last_seen_at = ? WHERE id = ?", [.integer(at.millisecondsSince1970), .text(id.description)])
    }

    func deleteSession(_ id: SessionID, of user: UserID) async throws -> Bool {
        try db.query("DELETE FROM sessions WHERE id = ? AND user_id = ?", [.text(id.description), .text(user.description)])
        return db.changes > 0
    }

    func deleteSessions(of user: UserID) async throws -> [SessionID] {
        let ids = try db.query("SELECT id FROM sessions WHERE user_id = ?", [.text(user.description)]).compactMap { SessionID($0.text(0)) }
        try db.query("DELETE FROM sessions WHERE user_id = ?", [.text(user.description)])
        return ids
    }

    func deleteExpiredSessions(before: Date) async throws -> Int {
        try db.query("DELETE FROM sessions WHERE expires_at < ?", [.integer(before.millisecondsSince1970)])
        return db.changes
    }

    // MARK: Chats

    private static let chatColumns =
        "c.id, c.kind, c.title, c.description, c.created_by, c.created_at, c.member_count, c.last_message_seq, c.last_activity_at"

    private func chat(_ row: SQLRow, offset: Int = 0) -> Chat? {
        guard let id = ChatID(row.text(offset)), let kind = ChatKind(rawValue: row.text(offset + 1)),
            let createdBy = UserID(row.text(offset + 4))
        else { return nil }
        return Chat(
            id: id, kind: kind, title: row.text(offset + 2), description: row.text(offset + 3), createdBy: createdBy,
            createdAt: Date(millisecondsSince1970: row.int(offset + 5)), memberCount: Int(row.int(offset + 6)),
            lastMessageSeq: row.int(offset + 7), lastActivityAt: Date(millisecondsSince1970: row.int(offset + 8)))
    }

    func chat(_ id: ChatID) async throws -> Chat? {
        try db.query("SELECT \(Self.chatColumns) FROM chats c WHERE c.id = ?", [.text(id.description)]).first.flatMap { chat($0) }
    }

    func personalChat(between a: UserID, and b: UserID) async throws -> ChatID? {
        let pair = [a.description, b.description].sorted()
        return try db.query("SELECT id FROM chats WHERE unique_key = ?", [.text("personal:\(pair[0]):\(pair[1])")]).first
            .flatMap { ChatID($0.text(0)) }
    }

    func notesChat(of user: UserID) async throws -> ChatID? {
        try db.query("SELECT id FROM chats WHERE unique_key = ?", [.text("notes:\(user)")]).first.flatMap { ChatID($0.text(0)) }
    }

    private func member(_ row: SQLRow, offset: Int = 0) -> ChatMember? {
        guard let userID = UserID(row.text(offset)), let role = MemberRole(rawValue: row.text(offset + 1)) else { return nil }
        return ChatMember(userID: userID, role: role, joinedAt: Date(millisecondsSince1970: row.int(offset + 2)), readSeq: row.int(offset + 3))
    }

    func member(_ user: UserID, of chat: ChatID) async throws -> ChatMember? {
        try db.query(
            "SELECT user_id, role, joined_at, read_seq FROM chat_members WHERE chat_id = ? AND user_id = ?",
            [.text(chat.description), .text(user.description)]
        ).first.flatMap { member($0) }
    }

    func members(of chat: ChatID) async throws -> [ChatMember] {
        try db.query(
            "SELECT user_id, role, joined_at, read_seq FROM chat_members WHERE chat_id = ? ORDER BY joined_at, user_id",
            [.text(chat.description)]
        ).compactMap { member($0) }
    }

    /// Whether bots are members comes with the member ids: without that answer every send would
    /// look for bots to notify, one more statement inside the single writer's transaction, which
    /// is what bounds SQLite's throughput (decision 0005).
    func sendingContext(chat chatID: ChatID, sender: UserID, clientMessageID: String?) async throws -> SendingContext? {
        guard
            let row = try db.query(
                Self.sendingContextQuery, [.text(sender.description), .text(clientMessageID ?? ""), .text(chatID.description)]
            ).first,
            let chat = chat(row), let member = member(row, offset: 9)
        else { return nil }
        var existing: Message?
        if row.optionalText(14) != nil, let clientMessageID {
            existing = try await message(in: chatID, sender: sender, clientMessageID: clientMessageID)
        }
        return SendingContext(
            chat: chat, member: member, memberIDs: Self.userIDs(commaSeparated: row.text(13)), existing: existing, mayHaveBots: row.int(15) != 0)
    }

    /// Everything a send reads before it writes, in one statement (it runs inside the single
    /// writer's transaction, for every message): the chat, the sender's membership, every
    /// member's id, whether the sender already sent this client message id, and whether any
    /// member is a bot. An empty client message id stands for none (ids are 1–128 bytes).
    private static let sendingContextQuery = """
        SELECT \(chatColumns), m.user_id, m.role, m.joined_at, m.read_seq,
          (SELECT group_concat(a.user_id) FROM chat_members a WHERE a.chat_id = c.id),
          (SELECT x.id FROM messages x WHERE x.chat_id = c.id AND x.sender_id = m.user_id AND x.client_message_id = ?2 AND ?2 <> ''),
          EXISTS (SELECT 1 FROM chat_members bm JOIN bots b ON b.id = bm.user_id WHERE bm.chat_id = c.id)
        FROM chats c JOIN chat_members m ON m.chat_id = c.id AND m.user_id = ?1
        WHERE c.id = ?3
        """

    /// Ids from `group_concat`, parsed in place instead of building a string per id. A piece
    /// that is not an id is skipped, as a row that is not one was before.
    private static func userIDs(commaSeparated list: String) -> [UserID] {
        var list = list
        return list.withUTF8 { bytes in
            var ids: [UserID] = []
            ids.reserveCapacity((bytes.count + 1) / 37)
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.count
                if let id = UserID(utf8: UnsafeBufferPointer(rebasing: bytes[start..<end])) { ids.append(id) }
                start = end + 1
            }
            return ids
        }
    }

    func memberIDs(of chat: ChatID) async throws -> [UserID] {
        try db.query("SELECT user_id FROM chat_members WHERE chat_id = ?", [.text(chat.description)]).compactMap { UserID($0.text(0)) }
    }

    func chatList(of user: UserID) async throws -> [ChatListRow] {
        let rows = try db.query(
            """
            SELECT \(Self.chatColumns), m.user_id, m.role, m.joined_at, m.read_seq,
              CASE WHEN c.kind = 'personal' THEN
                (SELECT p.user_id FROM chat_members p WHERE p.chat_id = c.id AND p.user_id != m.user_id LIMIT 1)
              END
            FROM chat_members m JOIN chats c ON c.id = m.chat_id
            WHERE m.user_id = ?
            ORDER BY c.last_activity_at DESC, c.id
            """, [.text(user.description)])
        var result: [ChatListRow] = []
        for row in rows {
            guard let chat = chat(row), let member = member(row, offset: 9) else { continue }
            // The newest message this member may see (not one addressed to others).
            let last = chat.lastMessageSeq > 0 ? try await messages(in: chat.id, .latest, limit: 1, visibleTo: user).first : nil
            let unread = try await unreadCount(in: chat.id, for: user, after: member.readSeq)
            result.append(
                ChatListRow(chat: chat, member: member, peerID: row.optionalText(13).flatMap(UserID.init), lastMessage: last, unreadCount: unread))
        }
        return result
    }

    func contacts(of user: UserID, limit: Int) async throws -> [UserID] {
        try db.query(
            """
            SELECT DISTINCT o.user_id FROM chat_members m
            JOIN chats c ON c.id = m.chat_id AND c.kind IN ('personal', 'group')
            JOIN chat_members o ON o.chat_id = m.chat_id AND o.user_id != m.user_id
            WHERE m.user_id = ? LIMIT ?
            """, [.text(user.description), .integer(Int64(limit))]
        ).compactMap { UserID($0.text(0)) }
    }

    func insertChat(_ chat: Chat, uniqueKey: String?) async throws {
        try db.query(
            """
            INSERT INTO chats (id, kind, title, description, created_by, created_at, member_count, last_message_seq,
              last_activity_at, unique_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(chat.id.description), .text(chat.kind.rawValue), .text(chat.title), .text(chat.description),
                .text(chat.createdBy.description), .integer(chat.createdAt.millisecondsSince1970), .integer(Int64(chat.memberCount)),
                .integer(chat.lastMessageSeq), .integer(chat.lastActivityAt.millisecondsSince1970), optional(uniqueKey),
            ])
    }

    func updateChat(_ chat: Chat) async throws {
        try db.query(
            "UPDATE chats SET title = ?, description = ?, member_count = ?, last_message_seq = ?, last_activity_at = ? WHERE id = ?",
            [
                .text(chat.title), .text(chat.description), .integer(Int64(chat.memberCount)), .integer(chat.lastMessageSeq),
                .integer(chat.lastActivityAt.millisecondsSince1970), .text(chat.id.description),
            ])
    }

    func insertMember(_ member: ChatMember, into chat: ChatID) async throws {
        try db.query(
            "INSERT INTO chat_members (chat_id, user_id, role, joined_at, read_seq) VALUES (?, ?, ?, ?, ?)",
            [
                .text(chat.description), .text(member.userID.description), .text(member.role.rawValue),
                .integer(member.joinedAt.millisecondsSince1970), .integer(member.readSeq),
            ])
    }

    func deleteMember(_ user: UserID, from chat: ChatID) async throws {
        try db.query("DELETE FROM chat_members WHERE chat_id = ? AND user_id = ?", [.text(chat.description), .text(user.description)])
    }

    func setRole(_ role: MemberRole, of user: UserID, in chat: ChatID) async throws {
        try db.query(
            "UPDATE chat_members SET role = ? WHERE chat_id = ? AND user_id = ?",
            [.text(role.rawValue), .text(chat.description), .text(user.description)])
    }

    func setReadSeq(_ seq: Int64, of user: UserID, in chat: ChatID) async throws {
        try db.query(
            "UPDATE chat_members SET read_seq = max(read_seq, ?) WHERE chat_id = ? AND user_id = ?",
            [.integer(seq), .text(chat.description), .text(user.description)])
    }

    // MARK: Messages

    private static let messageColumns = """
        id, chat_id, chat_seq, sender_id, text, reply_to, forward_json, mentions_json, created_at, edited_at, edit_count,
        deleted_at, pinned_at, client_message_id, extras_json
        """

    private func messages(_ rows: [SQLRow]) throws -> [Message] {
        var result: [Message] = []
        result.reserveCapacity(rows.count)
        let decoder = VestnikJSON.makeDecoder()
        for row in rows {
            guard let id = MessageID(row.text(0)), let chatID = ChatID(row.text(1)), let sender = UserID(row.text(3)) else { continue }
            let forward = try row.optionalText(6).map { try decoder.decode(ForwardOrigin.self, from: Data($0.utf8)) }
            let mentions = try row.optionalText(7).map { try decoder.decode([Mention].self, from: Data($0.utf8)) } ?? []
            let extras = try row.optionalText(14).map { try decoder.decode(MessageExtras.self, from: Data($0.utf8)) }
            var message =
                Message(
                    id: id, chatID: chatID, chatSeq: row.int(2), senderID: sender, text: row.text(4),
                    replyTo: row.optionalText(5).flatMap(MessageID.init), forwardedFrom: forward, mentions: mentions,
                    createdAt: Date(millisecondsSince1970: row.int(8)), editedAt: row.optionalInt(9).map(Date.init(millisecondsSince1970:)),
                    editCount: Int(row.int(10)), deletedAt: row.optionalInt(11).map(Date.init(millisecondsSince1970:)),
                    reactions: [], pinned: row.optionalInt(12) != nil, clientMessageID: row.optionalText(13))
            if let extras { message.extras = extras }
            result.append(message)
        }
        return try attachReactions(result)
    }

    private func attachReactions(_ messages: [Message]) throws -> [Message] {
        guard !messages.isEmpty else { return messages }
        var reactionRows: [ReactionRow] = []
        // Chunks keep the statement's parameter count bounded.
        for chunk in stride(from: 0, to: messages.count, by: 200).map({ Array(messages[$0..<min($0 + 200, messages.count)]) }) {
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let rows = try db.query(
                "SELECT message_id, emoji, user_id FROM reactions WHERE message_id IN (\(placeholders)) ORDER BY message_id, created_at, emoji",
                chunk.map { .text($0.id.description) })
            for row in rows {
                guard let messageID = MessageID(row.text(0)), let user = UserID(row.text(2)) else { continue }
                reactionRows.append(ReactionRow(messageID: messageID, emoji: row.text(1), userID: user))
            }
        }
        return Message.attaching(reactionRows, to: messages)
    }

    func message(_ id: MessageID) async throws -> Message? {
        try messages(db.query("SELECT \(Self.messageColumns) FROM messages WHERE id = ?", [.text(id.description)])).first
    }

    func message(in chat: ChatID, sender: UserID, clientMessageID: String) async throws -> Message? {
        try messages(
            db.query(
                "SELECT \(Self.messageColumns) FROM messages WHERE chat_id = ? AND sender_id = ? AND client_message_id = ?",
                [.text(chat.description), .text(sender.description), .text(clientMessageID)])
        ).first
    }

    func message(chat: ChatID, chatSeq: Int64) async throws -> Message? {
        try messages(
            db.query(
                "SELECT \(Self.messageColumns) FROM messages WHERE chat_id = ? AND chat_seq = ?", [.text(chat.description), .integer(chatSeq)])
        ).first
    }

    /// Whether `viewer` may see a message row (alias `m`): no recipients, the sender, or named in
    /// `recipients` of `extras_json` (the same rule as `Message.isVisible(to:)`). Binds the
    /// viewer twice.
    private static let visibleClause = """
        (m.extras_json IS NULL OR json_type(m.extras_json, '$.recipients') IS NULL OR m.sender_id = ?
          OR EXISTS (SELECT 1 FROM json_each(m.extras_json, '$.recipients') r WHERE r.value = ?))
        """

    func messages(in chat: ChatID, _ direction: HistoryDirection, limit: Int, visibleTo viewer: UserID?) async throws -> [Message] {
        let filter = viewer == nil ? "" : " AND " + Self.visibleClause
        let viewerArguments: [SQLValue] = viewer.map { [.text($0.description), .text($0.description)] } ?? []
        let rows: [SQLRow]
        switch direction {
        case .latest:
            rows = try db.query(
                "SELECT \(Self.messageColumns) FROM messages m WHERE chat_id = ?\(filter) ORDER BY chat_seq DESC LIMIT ?",
                [.text(chat.description)] + viewerArguments + [.integer(Int64(limit))]
            ).reversed()
        case .before(let seq):
            rows = try db.query(
                "SELECT \(Self.messageColumns) FROM messages m WHERE chat_id = ? AND chat_seq < ?\(filter) ORDER BY chat_seq DESC LIMIT ?",
                [.text(chat.description), .integer(seq)] + viewerArguments + [.integer(Int64(limit))]
            ).reversed()
        case .after(let seq):
            rows = try db.query(
                "SELECT \(Self.messageColumns) FROM messages m WHERE chat_id = ? AND chat_seq > ?\(filter) ORDER BY chat_seq ASC LIMIT ?",
                [.text(chat.description), .integer(seq)] + viewerArguments + [.integer(Int64(limit))])
        }
        return try messages(rows)
    }

    func pinnedMessages(in chat: ChatID) async throws -> [Message] {
        try messages(
            db.query(
                "SELECT \(Self.messageColumns) FROM messages WHERE chat_id = ? AND pinned_at IS NOT NULL ORDER BY pinned_at, chat_seq",
                [.text(chat.description)]))
    }

    func edits(of message: MessageID) async throws -> [MessageEdit] {
        try db.query(
            """
            SELECT 0, text, created_at FROM messages WHERE id = ?1 AND edit_count = 0 AND deleted_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM message_versions WHERE message_id = ?1 AND version = 0)
            UNION ALL SELECT version, text, created_at FROM message_versions WHERE message_id = ?1 ORDER BY 1
            """, [.text(message.description)]
        ).map { MessageEdit(version: Int($0.int(0)), text: $0.text(1), editedAt: Date(millisecondsSince1970: $0.int(2))) }
    }

    func reactions(of message: MessageID) async throws -> [ReactionSummary] {
        guard let found = try await self.message(message) else { return [] }
        return found.reactions
    }

    func unreadCount(in chat: ChatID, for user: UserID, after readSeq: Int64) async throws -> Int {
        Int(
            try db.query(
                "SELECT count(*) FROM messages m WHERE chat_id = ? AND chat_seq > ? AND sender_id != ? AND deleted_at IS NULL AND \(Self.visibleClause)",
                [.text(chat.description), .integer(readSeq), .text(user.description), .text(user.description), .text(user.description)]
            ).first?.int(0) ?? 0)
    }

    func readers(of chat: ChatID, atLeast chatSeq: Int64) async throws -> [UserID] {
        try db.query(
            "SELECT user_id FROM chat_members WHERE chat_id = ? AND read_seq >= ? ORDER BY user_id", [.text(chat.description), .integer(chatSeq)]
        ).compactMap { UserID($0.text(0)) }
    }

    func insertMessage(_ m: Message) async throws {
        let forward = try m.forwardedFrom.map { String(decoding: try VestnikJSON.encode($0), as: UTF8.self) }
        let mentions = m.mentions.isEmpty ? nil : String(decoding: try VestnikJSON.encode(m.mentions), as: UTF8.self)
        let extras = m.extras.isEmpty ? nil : String(decoding: try VestnikJSON.encode(m.extras), as: UTF8.self)
        try db.query(
            """
            INSERT INTO messages (id, chat_id, chat_seq, sender_id, text, reply_to, forward_json, mentions_json, created_at,
              edit_count, client_message_id, extras_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
            """,
            [
                .text(m.id.description), .text(m.chatID.description), .integer(m.chatSeq), .text(m.senderID.description), .text(m.text),
                optional(m.replyTo?.description), optional(forward), optional(mentions), .integer(m.createdAt.millisecondsSince1970),
                optional(m.clientMessageID), optional(extras),
            ])
        // No version row: an unedited message's only version is the row itself (see `edits(of:)`).
    }

    func recordEdit(of message: MessageID, text: String, mentions: [Mention], version: Int, at: Date) async throws -> Bool {
        let mentionsJSON = mentions.isEmpty ? nil : String(decoding: try VestnikJSON.encode(mentions), as: UTF8.self)
        // The first edit keeps the original as version 0 before it is overwritten.
        try db.query(
            """
            INSERT OR IGNORE INTO message_versions (message_id, version, text, created_at)
            SELECT id, 0, text, created_at FROM messages WHERE id = ? AND edit_count = 0 AND deleted_at IS NULL
            """, [.text(message.description)])
        try db.query(
            "UPDATE messages SET text = ?, mentions_json = ?, edited_at = ?, edit_count = ? WHERE id = ? AND deleted_at IS NULL",
            [.text(text), optional(mentionsJSON), .integer(at.millisecondsSince1970), .integer(Int64(version)), .text(message.description)])
        guard db.changes > 0 else { return false }
        try db.query(
            "INSERT INTO message_versions (message_id, version, text, created_at) VALUES (?, ?, ?, ?)",
            [.text(message.description), .integer(Int64(version)), .text(text), .integer(at.millisecondsSince1970)])
        return true
    }

    func markDeleted(_ message: MessageID, at: Date, keepingRecipients recipients: [UserID]?) async throws {
        // Delete for everyone: the text and every earlier version go; the row stays as a tombstone.
        let extras = try recipients.map { String(decoding: try VestnikJSON.encode(MessageExtras(recipients: $0)), as: UTF8.self) }
        try db.query(
            "UPDATE messages SET text = '', mentions_json = NULL, extras_json = ?, deleted_at = ?, pinned_at = NULL WHERE id = ?",
            [optional(extras), .integer(at.millisecondsSince1970), .text(message.description)])
        try db.query("DELETE FROM message_versions WHERE message_id = ?", [.text(message.description)])
        try db.query("DELETE FROM reactions WHERE message_id = ?", [.text(message.description)])
        try db.query("DELETE FROM message_expiry WHERE message_id = ?", [.text(message.description)])
    }

    func addReaction(_ emoji: String, by user: UserID, to message: MessageID, at: Date) async throws -> Bool {
        try db.query(
            "INSERT OR IGNORE INTO reactions (message_id, emoji, user_id, created_at) VALUES (?, ?, ?, ?)",
            [.text(message.description), .text(emoji), .text(user.description), .integer(at.millisecondsSince1970)])
        return db.changes > 0
    }

    func removeReaction(_ emoji: String, by user: UserID, from message: MessageID) async throws -> Bool {
        try db.query(
            "DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND user_id = ?",
            [.text(message.description), .text(emoji), .text(user.description)])
        return db.changes > 0
    }

    func setPinned(_ pinned: Bool, message: MessageID, at: Date) async throws {
        try db.query(
            "UPDATE messages SET pinned_at = ? WHERE id = ?", [pinned ? .integer(at.millisecondsSince1970) : .null, .text(message.description)])
    }

    // MARK: Event log

    func appendEvent(_ event: ServerEvent, payload: Data, audience: EventAudience, at: Date) async throws -> EventSeq {
        // The counter row is read and advanced inside this (exclusive) write transaction, so
        // positions commit in order and without gaps.
        guard let head = try db.query("UPDATE log_state SET head_seq = head_seq + 1 WHERE id = 1 RETURNING head_seq").first?.int(0) else {
            throw StoreError.backend("log_state row missing")
        }
        let audienceID = try storedAudience(audience, at: at)
        try db.query(
            "INSERT INTO events (seq, created_at, payload, audience_id) VALUES (?, ?, ?, ?)",
            [.integer(head), .integer(at.millisecondsSince1970), .blob(Array(payload)), .integer(audienceID)])
        return EventSeq(head)
    }

    /// The id of the stored audience for this recipient set, storing it the first time.
    private func storedAudience(_ audience: EventAudience, at: Date) throws -> Int64 {
        let digest = SQLValue.blob(Array(audience.digest))
        if let existing = try db.query("SELECT id FROM event_audiences WHERE digest = ?", [digest]).first?.int(0) { return existing }
        guard let id = try db.query(
            "INSERT INTO event_audiences (digest, created_at) VALUES (?, ?) RETURNING id", [digest, .integer(at.millisecondsSince1970)]
        ).first?.int(0) else { throw StoreError.backend("audience insert returned no id") }
        if !audience.members.isEmpty {
            // One statement for all members (a channel has thousands): the ids travel as one JSON
            // array instead of one statement execution per row.
            try db.query(
                "INSERT INTO event_audience_members (user_id, audience_id) SELECT value, ? FROM json_each(?)",
                [.integer(id), .text(Self.jsonArray(audience.members))])
        }
        return id
    }

    private static func jsonArray(_ users: [UserID]) -> String {
        var array = "["
        array.reserveCapacity(users.count * 39 + 2)
        for (index, user) in users.enumerated() {
            if index > 0 { array += "," }
            array += "\"\(user.description)\""
        }
        array += "]"
        return array
    }

    func pruneEvents(before: Date, limit: Int) async throws -> Int {
        // Among the `limit` oldest entries, the newest one that expired: everything up to it
        // goes. Reading only those keeps a batch's cost to its size, however long the log.
        guard limit > 0,
            let upTo = try db.query(
                "SELECT max(seq) FROM (SELECT seq, created_at FROM events ORDER BY seq LIMIT ?) WHERE created_at < ?",
                [.integer(Int64(limit)), .integer(before.millisecondsSince1970)]
            ).first?.optionalInt(0)
        else { return 0 }
        let gone = try db.query("DELETE FROM events WHERE seq <= ? RETURNING audience_id", [.integer(upTo)])
        // The audiences of the deleted entries that no entry refers to any more (one writer at a
        // time: no send can be about to reuse one).
        let audiences = Set(gone.compactMap { $0.optionalInt(0) })
        if !audiences.isEmpty {
            let ids = SQLValue.text("[" + audiences.map(String.init).joined(separator: ",") + "]")
            try db.query(
                """
                DELETE FROM event_audience_members WHERE audience_id IN (SELECT value FROM json_each(?1))
                  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.audience_id = event_audience_members.audience_id)
                """, [ids])
            try db.query(
                """
                DELETE FROM event_audiences WHERE id IN (SELECT value FROM json_each(?1))
                  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.audience_id = event_audiences.id)
                """, [ids])
        }
        try db.query("UPDATE log_state SET oldest_seq = max(oldest_seq, ?) WHERE id = 1", [.integer(upTo + 1)])
        return gone.count
    }

    /// A user's events after `since`. With a few audiences (the usual case: one per chat and
    /// membership state) the first `limit` positions of each are read along its own index range
    /// and merged, so a page costs what it returns. With many (events logged before migration 6
    /// each have their own) the log is walked forward from `since` instead, testing each event's
    /// audience, so paging through a backlog stays linear.
    func events(for user: UserID, after since: EventSeq, limit: Int) async throws -> [LoggedEvent] {
        let userID = SQLValue.text(user.description)
        let audienceCount = try db.query("SELECT count(*) FROM event_audience_members WHERE user_id = ?", [userID]).first?.int(0) ?? 0
        guard audienceCount > 0 else { return [] }
        if audienceCount > 64 {
            return try db.query(
                """
                SELECT e.seq, e.payload FROM events e CROSS JOIN event_audience_members m
                WHERE e.seq > ? AND m.user_id = ? AND m.audience_id = e.audience_id ORDER BY e.seq LIMIT ?
                """, [.integer(since.value), userID, .integer(Int64(limit))]
            ).map { LoggedEvent(seq: EventSeq($0.int(0)), payload: Data($0.blob(1))) }
        }
        let audiences = try db.query(
            """
            SELECT m.audience_id FROM event_audience_members m
            WHERE m.user_id = ? AND EXISTS (SELECT 1 FROM events e WHERE e.audience_id = m.audience_id AND e.seq > ?)
            """, [userID, .integer(since.value)]
        ).map { $0.int(0) }
        guard !audiences.isEmpty else { return [] }
        if audiences.count == 1 {
            return try db.query(
                "SELECT seq, payload FROM events WHERE audience_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                [.integer(audiences[0]), .integer(since.value), .integer(Int64(limit))]
            ).map { LoggedEvent(seq: EventSeq($0.int(0)), payload: Data($0.blob(1))) }
        }
        var positions: [Int64] = []
        for audience in audiences {
            positions += try db.query(
                "SELECT seq FROM events WHERE audience_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                [.integer(audience), .integer(since.value), .integer(Int64(limit))]
            ).map { $0.int(0) }
        }
        positions.sort()
        let page = positions.prefix(limit)
        guard !page.isEmpty else { return [] }
        return try db.query(
            "SELECT seq, payload FROM events WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
            [.text("[" + page.map(String.init).joined(separator: ",") + "]")]
        ).map { LoggedEvent(seq: EventSeq($0.int(0)), payload: Data($0.blob(1))) }
    }

    func oldestRetainedSeq() async throws -> EventSeq {
        EventSeq(try db.query("SELECT oldest_seq FROM log_state WHERE id = 1").first?.int(0) ?? 1)
    }

    func headSeq() async throws -> EventSeq {
        EventSeq(try db.query("SELECT head_seq FROM log_state WHERE id = 1").first?.int(0) ?? 0)
    }

    /// Events in `(after, through]` with their recipients, for the fan-out's gap filling.
    func committedEvents(after: EventSeq, through: EventSeq, limit: Int) throws -> [CommittedEvent] {
        let rows = try db.query(
            "SELECT seq, payload, audience_id FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            [.integer(after.value), .integer(through.value), .integer(Int64(limit))])
        guard let last = rows.last?.int(0) else { return [] }
        // Each audience's members once, however many of the events share it.
        var members: [Int64: [UserID]] = [:]
        for row in try db.query(
            """
            SELECT m.audience_id, m.user_id FROM event_audience_members m
            WHERE m.audience_id IN (SELECT DISTINCT audience_id FROM events WHERE seq > ? AND seq <= ?)
            """, [.integer(after.value), .integer(last)])
        {
            if let user = UserID(row.text(1)) { members[row.int(0), default: []].append(user) }
        }
        let decoder = VestnikJSON.makeDecoder()
        return rows.compactMap { row in
            let payload = Data(row.blob(1))
            guard let event = try? decoder.decode(ServerEvent.self, from: payload) else { return nil }
            let audience = row.optionalInt(2)
            return CommittedEvent(seq: EventSeq(row.int(0)), event: event, recipients: audience.flatMap { members[$0] } ?? [], payload: payload)
        }
    }

    // MARK: Bots

    private static let botColumns =
        "id, url, sealed_secret, allowed_data, enabled, description, status, status_at, commands_json, created_at, secret_format, permissions"
    private static let prefixedBotColumns =
        "b.id, b.url, b.sealed_secret, b.allowed_data, b.enabled, b.description, b.status, b.status_at, b.commands_json, b.created_at, b.secret_format, b.permissions"

    private func botRecord(_ row: SQLRow, offset o: Int = 0) throws -> BotRecord? {
        guard let id = UserID(row.text(o)) else { return nil }
        return BotRecord(
            id: id, url: row.text(o + 1), sealedSecret: Data(row.blob(o + 2)), allowedData: BotAllowedData(rawValue: row.text(o + 3)) ?? .commands,
            enabled: row.int(o + 4) != 0, description: row.text(o + 5), status: row.optionalText(o + 6),
            statusAt: row.optionalInt(o + 7).map(Date.init(millisecondsSince1970:)),
            commands: try VestnikJSON.decode([BotCommand].self, from: Data(row.text(o + 8).utf8)),
            createdAt: Date(millisecondsSince1970: row.int(o + 9)), secretFormat: Int(row.int(o + 10)),
            permissions: BotPermission.parseList(row.text(o + 11)) ?? [])
    }

    func bot(_ id: UserID) async throws -> BotRecord? {
        try db.query("SELECT \(Self.botColumns) FROM bots WHERE id = ?", [.text(id.description)]).first.flatMap { try botRecord($0) }
    }

    func bots() async throws -> [BotRecord] {
        try db.query(
            "SELECT \(Self.prefixedBotColumns) FROM bots b JOIN users u ON u.id = b.id ORDER BY u.display_name, b.id",
            []
        ).compactMap { try botRecord($0) }
    }

    func botMembers(of chat: ChatID) async throws -> [BotRecord] {
        try db.query(
            """
            SELECT \(Self.prefixedBotColumns)
            FROM chat_members m JOIN bots b ON b.id = m.user_id WHERE m.chat_id = ? ORDER BY b.id
            """, [.text(chat.description)]
        ).compactMap { try botRecord($0) }
    }

    func setExtras(_ extras: MessageExtras, of message: MessageID) async throws -> Bool {
        let json = extras.isEmpty ? nil : String(decoding: try VestnikJSON.encode(extras), as: UTF8.self)
        try db.query("UPDATE messages SET extras_json = ? WHERE id = ? AND deleted_at IS NULL", [optional(json), .text(message.description)])
        return db.changes > 0
    }

    func insertBot(_ b: BotRecord) async throws {
        try db.query(
            "INSERT INTO bots (\(Self.botColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(b.id.description), .text(b.url), .blob(Array(b.sealedSecret)), .text(b.allowedData.rawValue), .integer(b.enabled ? 1 : 0),
                .text(b.description), optional(b.status), b.statusAt.map { .integer($0.millisecondsSince1970) } ?? .null,
                .text(String(decoding: try VestnikJSON.encode(b.commands), as: UTF8.self)), .integer(b.createdAt.millisecondsSince1970),
                .integer(Int64(b.secretFormat)), .text(BotPermission.listString(b.permissions)),
            ])
    }

    func updateBot(_ b: BotRecord) async throws {
        try db.query(
            """
            UPDATE bots SET url = ?, sealed_secret = ?, allowed_data = ?, enabled = ?, description = ?, status = ?, status_at = ?,
              commands_json = ?, secret_format = ?, permissions = ? WHERE id = ?
            """,
            [
                .text(b.url), .blob(Array(b.sealedSecret)), .text(b.allowedData.rawValue), .integer(b.enabled ? 1 : 0), .text(b.description),
                optional(b.status), b.statusAt.map { .integer($0.millisecondsSince1970) } ?? .null,
                .text(String(decoding: try VestnikJSON.encode(b.commands), as: UTF8.self)), .integer(Int64(b.secretFormat)),
                .text(BotPermission.listString(b.permissions)), .text(b.id.description),
            ])
    }

    // MARK: Login attempts (the store's own, not a writer's: see `SQLiteStore.countAttempt`)

    func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Int64) throws -> AttemptCount {
        let counted = try db.query(
            """
            INSERT INTO login_attempts (key_hash, spent_until) VALUES (?1, ?2 + ?3)
            ON CONFLICT (key_hash) DO UPDATE SET spent_until = max(spent_until, ?2) + ?3 WHERE max(spent_until, ?2) <= ?2 + ?4
            RETURNING spent_until
            """,
            [.text(key.hex), .integer(now), .integer(limit.spacingMilliseconds), .integer(limit.headroomMilliseconds)])
        if let until = counted.first?.int(0) { return .counted(until: Date(millisecondsSince1970: until)) }
        let spentUntil = try db.query("SELECT spent_until FROM login_attempts WHERE key_hash = ?", [.text(key.hex)]).first?.int(0) ?? now
        return .refused(wait: Double(max(0, spentUntil - limit.headroomMilliseconds - now)) / 1000)
    }

    func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Int64, at now: Int64) throws {
        guard countedUntil > now else { return }
        try db.query(
            "UPDATE login_attempts SET spent_until = spent_until - ? WHERE key_hash = ?", [.integer(limit.spacingMilliseconds), .text(key.hex)])
    }

    func forgetAttempts(under key: AttemptKey) throws {
        try db.query("DELETE FROM login_attempts WHERE key_hash = ?", [.text(key.hex)])
    }

    func pruneAttempts(before now: Int64, limit: Int) throws -> Int {
        try db.query(
            "DELETE FROM login_attempts WHERE key_hash IN (SELECT key_hash FROM login_attempts WHERE spent_until < ?1 LIMIT ?2) AND spent_until < ?1",
            [.integer(now), .integer(Int64(limit))])
        return db.changes
    }

    func claimServerKeyFingerprint(_ fingerprint: String, name: String) async throws -> String {
        try db.query("INSERT OR IGNORE INTO server_keys (name, fingerprint) VALUES (?, ?)", [.text(name), .text(fingerprint)])
        return try db.query("SELECT fingerprint FROM server_keys WHERE name = ?", [.text(name)]).first?.text(0) ?? fingerprint
    }

    func deleteBot(_ id: UserID) async throws {
        try db.query("DELETE FROM bot_outbox WHERE bot_id = ?", [.text(id.description)])
        try db.query("DELETE FROM bots WHERE id = ?", [.text(id.description)])
    }

    func enqueueBotJob(_ job: BotJobRecord) async throws {
        try db.query(
            "INSERT INTO bot_outbox (id, bot_id, job, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .text(job.id.uuidString.lowercased()), .text(job.botID.description), .blob(Array(try VestnikJSON.encode(job.job))),
                .integer(Int64(job.attempts)), .integer(job.nextAttemptAt.millisecondsSince1970), .integer(job.createdAt.millisecondsSince1970),
            ])
    }

    func claimBotJobs(now: Date, leaseUntil: Date, limit: Int, perBot: Int, skipping busyBots: [UserID]) async throws -> [BotJobRecord] {
        // Busy bots are skipped and each bot capped in SQL: filtering afterwards let one bot's
        // backlog fill every claim while other bots' jobs waited behind it.
        let busy = "[" + busyBots.map { "\"\($0.description)\"" }.joined(separator: ",") + "]"
        let rows = try db.query(
            """
            SELECT id, bot_id, job, attempts, next_attempt_at, created_at FROM (
                SELECT id, bot_id, job, attempts, next_attempt_at, created_at,
                    row_number() OVER (PARTITION BY bot_id ORDER BY next_attempt_at, created_at) AS place
                FROM bot_outbox WHERE next_attempt_at <= ? AND bot_id NOT IN (SELECT value FROM json_each(?))
            ) WHERE place <= ? ORDER BY next_attempt_at, created_at LIMIT ?
            """,
            [.integer(now.millisecondsSince1970), .text(busy), .integer(Int64(max(1, perBot))), .integer(Int64(limit))])
        var claimed: [BotJobRecord] = []
        for row in rows where claimed.count < limit {
            guard let id = UUID(uuidString: row.text(0)), let bot = UserID(row.text(1)) else { continue }
            let job = try VestnikJSON.decode(BotJob.self, from: Data(row.blob(2)))
            try db.query(
                "UPDATE bot_outbox SET next_attempt_at = ? WHERE id = ?", [.integer(leaseUntil.millisecondsSince1970), .text(row.text(0))])
            claimed.append(
                BotJobRecord(
                    id: id, botID: bot, job: job, attempts: Int(row.int(3)), nextAttemptAt: leaseUntil,
                    createdAt: Date(millisecondsSince1970: row.int(5))))
        }
        return claimed
    }

    func deleteBotJob(_ id: UUID) async throws {
        try db.query("DELETE FROM bot_outbox WHERE id = ?", [.text(id.uuidString.lowercased())])
    }

    func rescheduleBotJob(_ id: UUID, attempts: Int, at: Date, error: String) async throws {
        try db.query(
            "UPDATE bot_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            [.integer(Int64(attempts)), .integer(at.millisecondsSince1970), .text(String(error.prefix(500))), .text(id.uuidString.lowercased())])
    }

    func stealth(of chat: ChatID) async throws -> StealthSettings? {
        try db.query("SELECT burn_in, expire_in, disable_web FROM chat_stealth WHERE chat_id = ?", [.text(chat.description)]).first.map {
            StealthSettings(burnIn: $0.optionalInt(0).map(Int.init), expireIn: $0.optionalInt(1).map(Int.init), disableWeb: $0.int(2) != 0)
        }
    }

    func setStealth(_ settings: StealthSettings?, for chat: ChatID) async throws {
        try db.query("DELETE FROM chat_stealth WHERE chat_id = ?", [.text(chat.description)])
        guard let settings else { return }
        try db.query(
            "INSERT INTO chat_stealth (chat_id, burn_in, expire_in, disable_web) VALUES (?, ?, ?, ?)",
            [
                .text(chat.description), settings.burnIn.map { .integer(Int64($0)) } ?? .null, settings.expireIn.map { .integer(Int64($0)) } ?? .null,
                .integer(settings.disableWeb ? 1 : 0),
            ])
    }

    func setExpiry(_ at: Date?, of message: MessageID) async throws {
        try db.query("DELETE FROM message_expiry WHERE message_id = ?", [.text(message.description)])
        guard let at else { return }
        try db.query(
            "INSERT INTO message_expiry (message_id, expires_at) VALUES (?, ?)", [.text(message.description), .integer(at.millisecondsSince1970)])
    }

    func expiredMessages(before now: Date, limit: Int) async throws -> [MessageID] {
        try db.query(
            "SELECT message_id FROM message_expiry WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            [.integer(now.millisecondsSince1970), .integer(Int64(limit))]
        ).compactMap { MessageID($0.text(0)) }
    }

    func hasDueBotJobs(now: Date) async throws -> Bool {
        try !db.query("SELECT 1 FROM bot_outbox WHERE next_attempt_at <= ? LIMIT 1", [.integer(now.millisecondsSince1970)]).isEmpty
    }

    func pendingBotJobs(of bot: UserID) async throws -> Int {
        Int(try db.query("SELECT count(*) FROM bot_outbox WHERE bot_id = ?", [.text(bot.description)]).first?.int(0) ?? 0)
    }

    private func optional(_ value: String?) -> SQLValue {
        value.map { .text($0) } ?? .null
    }
}
