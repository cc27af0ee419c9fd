import Crypto
import Foundation
import Testing
import VestnikCore
import VestnikModel

/// The behaviour every ``Store`` adapter must have. Each check takes a fresh, empty store;
/// adapters' test targets call every check (see `allChecks`).
package enum StoreConformance {
    /// Every check by name, so an adapter's suite can run them as parameterized tests.
    package static let allChecks: [(String, @Sendable (any Store) async throws -> Void)] = [
        ("users: insert, look up, duplicate login", usersRoundTrip),
        ("users: search is case-insensitive, Cyrillic included", userSearch),
        ("users: by e-mail ignoring ASCII case", usersByEmail),
        ("sessions: lookup by token hash, delete only own", sessions),
        ("chats: unique personal pair, members, chat list order", chatsAndMembers),
        ("messages: history pages, edits, tombstones", messageHistory),
        ("messages: client_message_id is unique per sender", clientMessageIDUnique),
        ("reactions and pins", reactionsAndPins),
        ("event log: positions contiguous, per-recipient reads", eventLog),
        ("event log: a failed write leaves no trace", rollback),
        ("event log: concurrent writers commit in position order", concurrentWriters),
        ("concurrent writes: a failing one leaves no trace, the others all commit", concurrentFailures),
        ("event log: pruning moves the oldest retained position", pruning),
        ("event log: shared audiences reach exactly their recipients, page in order, survive pruning", sharedAudiences),
        ("event log: an event this version cannot read is skipped; the next of its audience keeps its recipients", unreadableEvent),
        ("text round-trips byte for byte", textFidelity),
        ("bots: registrations, kinds, bot members", bots),
        ("bot outbox: due order, leases, busy bots, retries", botOutbox),
        ("message extras round-trip and go with deletion", messageExtras),
        ("messages for some members: pages and unread counts count only visible ones", visibleHistory),
        ("sending: the context a send reads and the message insert it makes", sending),
        ("authentication: a session by token hash with its user's blocked flag", authentication),
        ("login attempts: a burst up to the limit, then one per spacing; give back, forget, prune", loginAttempts),
    ]

    /// A newer binary may log an event this one cannot decode: it is skipped, and an event after it
    /// with the same recipients (stored once, decision 0006) still names them.
    @Sendable static func unreadableEvent(_ store: any Store) async throws {
        let (a, b) = (UserID.random(), UserID.random())
        let readable = ServerEvent.receiptUpdated(chatID: .random(), userID: a, readSeq: 1)
        _ = try await store.write { tx in
            try await tx.appendEvent(readable, payload: Data(#"{"type":"from.the.future"}"#.utf8), recipients: [a, b], at: Date.millisecondNow())
        }
        let second = try await store.write { tx in
            try await tx.appendEvent(readable, payload: try VestnikJSON.encode(readable), recipients: [a, b], at: Date.millisecondNow())
        }
        let committed = try await store.committedEvents(after: .zero, through: second, limit: 10)
        #expect(committed.map(\.seq) == [second])
        #expect(committed.map { Set($0.recipients) } == [[a, b]])
    }

    /// The generic cell rate rule of decision 0017, at fixed times: 3 per 30 s is a burst of 3,
    /// then one every 10 s.
    @Sendable static func loginAttempts(_ store: any Store) async throws {
        let limit = AttemptLimit(count: 3, window: 30)
        let secret = SymmetricKey(size: .bits256)
        let key = AttemptKey.account("alice", keyedBy: secret)
        let other = AttemptKey.address("192.0.2.1", keyedBy: secret)
        #expect(key != AttemptKey.account("alice", keyedBy: SymmetricKey(size: .bits256)), "keys depend on the deployment's secret")
        #expect(key == AttemptKey.account("alice", keyedBy: secret))
        let start = Date(millisecondsSince1970: 1_800_000_000_000)
        func at(_ offset: TimeInterval) -> Date { start.addingTimeInterval(offset) }
        func count(_ key: AttemptKey, at offset: TimeInterval) async throws -> AttemptCount {
            try await store.countAttempt(under: key, limit: limit, at: at(offset))
        }
        #expect(try await count(key, at: 0) == .counted(until: at(10)))
        #expect(try await count(key, at: 0) == .counted(until: at(20)))
        #expect(try await count(key, at: 0) == .counted(until: at(30)))
        // The fourth at once is refused: three attempts are spent until +30 s, the next one is
        // allowed when only 20 s of that are ahead, at +10 s. The refusal counts nothing.
        #expect(try await count(key, at: 0) == .refused(wait: 10))
        #expect(try await count(key, at: 9.5) == .refused(wait: 0.5))
        // Keys count apart.
        #expect(try await count(other, at: 0) == .counted(until: at(10)))
        #expect(try await count(key, at: 10) == .counted(until: at(40)))
        #expect(try await count(key, at: 10) == .refused(wait: 10))
        // A given-back attempt can be made again; forgetting clears the key.
        try await store.uncountAttempt(under: key, limit: limit, countedUntil: at(40), at: at(10))
        #expect(try await count(key, at: 10).isCounted)
        #expect(try await !count(key, at: 10).isCounted)
        try await store.forgetAttempts(under: key)
        for _ in 0..<3 { #expect(try await count(key, at: 10).isCounted) }
        // After a quiet window the whole burst is back.
        for _ in 0..<3 { #expect(try await count(key, at: 100).isCounted) }
        #expect(try await !count(key, at: 100).isCounted)

        // A give-back of an attempt whose share was spent already gives nothing back: `other`'s
        // first attempt (until +10 s) is given back at +100 s, after a new one was counted.
        #expect(try await count(other, at: 100) == .counted(until: at(110)))
        try await store.uncountAttempt(under: other, limit: limit, countedUntil: at(10), at: at(100))
        for _ in 0..<2 { #expect(try await count(other, at: 100).isCounted) }
        #expect(try await !count(other, at: 100).isCounted, "the late give-back cancelled a newer attempt")

        // Pruning deletes only keys whose attempts are all spent, at most `limit` per call:
        // `other` and `key` are both spent until +130 s, live at +50 s.
        #expect(try await store.pruneAttempts(before: at(50), limit: 10) == 0)
        let third = AttemptKey.account("carol", keyedBy: secret)
        #expect(try await count(third, at: 0).isCounted)
        #expect(try await store.pruneAttempts(before: at(50), limit: 10) == 1)
        #expect(try await !count(key, at: 100).isCounted, "the pruning kept the live key")
        #expect(try await store.pruneAttempts(before: at(131), limit: 1) == 1)
        #expect(try await store.pruneAttempts(before: at(131), limit: 1) == 1)
        #expect(try await store.pruneAttempts(before: at(131), limit: 1) == 0)
        for _ in 0..<3 { #expect(try await count(key, at: 131).isCounted) }

        // A limit that does not divide its window still allows its whole burst: 7 in 10 s.
        let uneven = AttemptLimit(count: 7, window: 10)
        let bob = AttemptKey.account("bob", keyedBy: secret)
        for _ in 0..<7 { #expect(try await store.countAttempt(under: bob, limit: uneven, at: start).isCounted) }
        #expect(try await !store.countAttempt(under: bob, limit: uneven, at: start).isCounted)

        // The store's own clock: a fresh key counts, and a refusal names a wait within the spacing.
        let clocked = AttemptKey.account("dave", keyedBy: secret)
        for _ in 0..<3 { #expect(try await store.countAttempt(under: clocked, limit: limit, at: nil).isCounted) }
        let answer = try await store.countAttempt(under: clocked, limit: limit, at: nil)
        guard case .refused(let wait) = answer else {
            Issue.record("the fourth attempt was counted: \(answer)")
            return
        }
        #expect(wait > 9 && wait <= 10, "waits \(wait) s")
    }

    // MARK: Fixtures

    package static func makeUser(_ login: String, name: String? = nil, department: String? = nil) -> User {
        User(
            id: .random(), login: login, displayName: name ?? login.capitalized, department: department,
            createdAt: Date.millisecondNow())
    }

    @discardableResult
    package static func insertUser(_ store: any Store, _ user: User) async throws -> User {
        try await store.write { tx in
            try await tx.insertUser(UserRecord(user: user, passwordHash: "x"), searchText: AccountService.searchText(user))
        }
        return user
    }

    package static func makeChat(_ kind: ChatKind, by user: UserID, title: String = "Chat") -> Chat {
        let now = Date.millisecondNow()
        return Chat(
            id: .random(), kind: kind, title: title, description: "", createdBy: user, createdAt: now, memberCount: 0, lastMessageSeq: 0,
            lastActivityAt: now)
    }

    package static func insertChat(_ store: any Store, _ chat: Chat, members: [UserID], uniqueKey: String? = nil) async throws {
        try await store.write { tx in
            try await tx.insertChat(chat, uniqueKey: uniqueKey)
            for (index, user) in members.enumerated() {
                try await tx.insertMember(
                    ChatMember(userID: user, role: index == 0 ? .admin : .member, joinedAt: chat.createdAt, readSeq: 0), into: chat.id)
            }
        }
    }

    /// Appends a message the way Core does: next chat sequence, chat row updated.
    @discardableResult
    package static func appendMessage(_ store: any Store, chat chatID: ChatID, from sender: UserID, text: String, clientID: String? = nil) async throws -> Message {
        try await store.write { tx in
            guard var chat = try await tx.chat(chatID) else { throw StoreError.backend("no chat") }
            chat.lastMessageSeq += 1
            chat.lastActivityAt = Date.millisecondNow()
            try await tx.updateChat(chat)
            let message = Message(
                id: .random(), chatID: chatID, chatSeq: chat.lastMessageSeq, senderID: sender, text: text, createdAt: Date.millisecondNow(),
                clientMessageID: clientID)
            try await tx.insertMessage(message)
            return message
        }
    }

    // MARK: Checks

    @Sendable package static func usersRoundTrip(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice", name: "Alice Smirnova"))
        let found = try await store.read { try await $0.user(alice.id) }
        #expect(found?.user == alice)
        #expect(found?.passwordHash == "x")
        #expect(try await store.read { try await $0.user(login: "alice") }?.user.id == alice.id)
        #expect(try await store.read { try await $0.user(login: "nobody") } == nil)
        await #expect(throws: StoreError.self) {
            try await insertUser(store, makeUser("alice"))
        }
        var updated = alice
        updated.isBlocked = true
        let blocked = updated
        try await store.write { tx in try await tx.updateUser(blocked, searchText: "alice") }
        #expect(try await store.read { try await $0.user(alice.id) }?.user.isBlocked == true)
        let bob = try await insertUser(store, makeUser("bob"))
        #expect(try await store.read { try await $0.users([bob.id, alice.id, .random()]) }.map(\.id) == [bob.id, alice.id])
        #expect(try await store.read { try await $0.allUsers(limit: 10, offset: 0) }.map(\.login) == ["alice", "bob"])
        #expect(try await store.read { try await $0.allUsers(limit: 1, offset: 1) }.map(\.login) == ["bob"])
    }

    @Sendable package static func usersByEmail(_ store: any Store) async throws {
        var alice = makeUser("alice")
        alice.email = "Alice.Smirnova@Example.COM"
        var bob = makeUser("bob")
        bob.email = "bob@example.com"
        try await insertUser(store, alice)
        try await insertUser(store, bob)
        try await insertUser(store, makeUser("nomail"))
        #expect(try await store.read { try await $0.users(email: "alice.smirnova@example.com", limit: 10) }.map(\.id) == [alice.id])
        #expect(try await store.read { try await $0.users(email: "bob@example.com", limit: 10) }.map(\.id) == [bob.id])
        #expect(try await store.read { try await $0.users(email: "example.com", limit: 10) }.isEmpty, "whole addresses only")
        #expect(try await store.read { try await $0.users(email: "", limit: 10) }.isEmpty)
    }

    @Sendable package static func userSearch(_ store: any Store) async throws {
        let olga = try await insertUser(store, makeUser("olga", name: "Ольга Петрова", department: "Бухгалтерия"))
        let ivan = try await insertUser(store, makeUser("ivan", name: "Иван Сидоров", department: "ИТ"))
        #expect(try await store.read { try await $0.searchUsers("ольга", limit: 10) }.map(\.id) == [olga.id])
        #expect(try await store.read { try await $0.searchUsers("бухгалтерия", limit: 10) }.map(\.id) == [olga.id])
        #expect(try await store.read { try await $0.searchUsers("ivan", limit: 10) }.map(\.id) == [ivan.id])
        #expect(try await store.read { try await $0.searchUsers("ов", limit: 10) }.count == 2)
        #expect(try await store.read { try await $0.searchUsers("zzz", limit: 10) }.isEmpty)
        // LIKE wildcards in the query are literal text.
        #expect(try await store.read { try await $0.searchUsers("%", limit: 10) }.isEmpty)
    }

    @Sendable package static func sessions(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice"))
        let bob = try await insertUser(store, makeUser("bob"))
        let now = Date.millisecondNow()
        let session = Session(id: .random(), userID: alice.id, deviceName: "laptop", createdAt: now, lastSeenAt: now, expiresAt: now + 3600)
        let hash = SessionToken.hash("token-1")
        try await store.write { tx in try await tx.insertSession(SessionRecord(session: session, tokenHash: hash)) }
        #expect(try await store.read { try await $0.session(tokenHash: hash) }?.session == session)
        #expect(try await store.read { try await $0.session(tokenHash: SessionToken.hash("token-2")) } == nil)
        #expect(try await store.write { try await $0.deleteSession(session.id, of: bob.id) } == false)
        #expect(try await store.read { try await $0.sessions(of: alice.id) }.count == 1)
        #expect(try await store.write { try await $0.deleteSessions(of: alice.id) } == [session.id])
        #expect(try await store.read { try await $0.session(tokenHash: hash) } == nil)
    }

    @Sendable package static func chatsAndMembers(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let bob = try await insertUser(store, makeUser("bob")).id
        let personal = makeChat(.personal, by: alice)
        try await insertChat(store, personal, members: [alice, bob], uniqueKey: "personal:pair")
        await #expect(throws: StoreError.self) {
            try await insertChat(store, makeChat(.personal, by: bob), members: [], uniqueKey: "personal:pair")
        }
        let group = makeChat(.group, by: alice, title: "Team")
        try await insertChat(store, group, members: [alice, bob])
        #expect(try await store.read { try await $0.member(bob, of: group.id) }?.role == .member)
        #expect(try await store.read { try await $0.member(alice, of: group.id) }?.role == .admin)
        #expect(Set(try await store.read { try await $0.memberIDs(of: group.id) }) == [alice, bob])
        try await appendMessage(store, chat: group.id, from: alice, text: "hello")
        try await appendMessage(store, chat: group.id, from: alice, text: "again")
        let list = try await store.read { try await $0.chatList(of: bob) }
        #expect(list.map(\.chat.id) == [group.id, personal.id])
        #expect(list.first?.unreadCount == 2)
        #expect(list.first?.lastMessage?.text == "again")
        #expect(list.last?.peerID == alice)
        try await store.write { tx in try await tx.setReadSeq(1, of: bob, in: group.id) }
        try await store.write { tx in try await tx.setReadSeq(0, of: bob, in: group.id) }  // never backwards
        #expect(try await store.read { try await $0.member(bob, of: group.id) }?.readSeq == 1)
        #expect(try await store.read { try await $0.unreadCount(in: group.id, for: bob, after: 1) } == 1)
        #expect(try await store.read { try await $0.readers(of: group.id, atLeast: 1) } == [bob])
        #expect(try await store.read { try await $0.contacts(of: alice, limit: 10) } == [bob])
        try await store.write { tx in try await tx.deleteMember(bob, from: group.id) }
        #expect(try await store.read { try await $0.member(bob, of: group.id) } == nil)
    }

    @Sendable package static func messageHistory(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let chat = makeChat(.group, by: alice)
        try await insertChat(store, chat, members: [alice])
        var sent: [Message] = []
        for i in 1...10 { sent.append(try await appendMessage(store, chat: chat.id, from: alice, text: "m\(i)")) }
        #expect(try await store.read { try await $0.messages(in: chat.id, .latest, limit: 3) }.map(\.text) == ["m8", "m9", "m10"])
        #expect(try await store.read { try await $0.messages(in: chat.id, .before(4), limit: 2) }.map(\.text) == ["m2", "m3"])
        #expect(try await store.read { try await $0.messages(in: chat.id, .after(8), limit: 5) }.map(\.text) == ["m9", "m10"])
        let first = sent[0]
        #expect(try await store.read { try await $0.message(first.id) } == first)
        // An unedited message's only version is the message itself.
        let original = try await store.read { try await $0.edits(of: first.id) }
        #expect(original.map(\.version) == [0] && original.map(\.text) == ["m1"] && original.first?.editedAt == first.createdAt)
        #expect(try await store.write { tx in try await tx.recordEdit(of: first.id, text: "m1 edited", mentions: [], version: 1, at: Date.millisecondNow()) })
        #expect(try await store.read { try await $0.edits(of: first.id) }.map(\.version) == [0, 1])
        let second = sent[1].id
        #expect(try await store.read { try await $0.edits(of: second) }.map(\.text) == ["m2"], "other messages keep their own text")
        let edited = try await store.read { try await $0.message(first.id) }
        #expect(edited?.text == "m1 edited")
        #expect(edited?.editCount == 1)
        #expect(edited?.editedAt != nil)
        #expect(try await store.read { try await $0.edits(of: first.id) }.map(\.text) == ["m1", "m1 edited"])
        try await store.write { tx in try await tx.markDeleted(first.id, at: Date.millisecondNow(), keepingRecipients: nil) }
        let tombstone = try await store.read { try await $0.message(first.id) }
        #expect(tombstone?.isDeleted == true)
        #expect(tombstone?.text == "")
        #expect(try await store.read { try await $0.edits(of: first.id) }.isEmpty)
        // An edit that read the message before a delete committed must not bring it back: the
        // store's edit is conditional on the message not being deleted.
        let late = try await store.write { tx in
            try await tx.recordEdit(of: first.id, text: "resurrected", mentions: [], version: 2, at: Date.millisecondNow())
        }
        #expect(late == false)
        let lateExtras = try await store.write { tx in try await tx.setExtras(MessageExtras(metadata: .string("x")), of: first.id) }
        #expect(lateExtras == false)
        #expect(try await store.read { try await $0.message(first.id) } == tombstone, "the tombstone is unchanged")
        #expect(try await store.read { try await $0.edits(of: first.id) }.isEmpty)
        #expect(try await store.read { try await $0.message(chat: chat.id, chatSeq: 2) }?.text == "m2")
    }

    @Sendable package static func clientMessageIDUnique(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let bob = try await insertUser(store, makeUser("bob")).id
        let chat = makeChat(.group, by: alice)
        try await insertChat(store, chat, members: [alice, bob])
        let original = try await appendMessage(store, chat: chat.id, from: alice, text: "once", clientID: "c-1")
        await #expect(throws: StoreError.self) {
            try await appendMessage(store, chat: chat.id, from: alice, text: "twice", clientID: "c-1")
        }
        // Another sender may use the same key.
        try await appendMessage(store, chat: chat.id, from: bob, text: "bob's", clientID: "c-1")
        #expect(try await store.read { try await $0.message(in: chat.id, sender: alice, clientMessageID: "c-1") }?.id == original.id)
        #expect(try await store.read { try await $0.messages(in: chat.id, .latest, limit: 10) }.count == 2)
        // The key is scoped to the chat: the same key in another chat is a new message.
        let other = makeChat(.group, by: alice)
        try await insertChat(store, other, members: [alice])
        try await appendMessage(store, chat: other.id, from: alice, text: "elsewhere", clientID: "c-1")
        #expect(try await store.read { try await $0.message(in: other.id, sender: alice, clientMessageID: "c-1") }?.text == "elsewhere")
    }

    @Sendable package static func reactionsAndPins(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let bob = try await insertUser(store, makeUser("bob")).id
        let chat = makeChat(.group, by: alice)
        try await insertChat(store, chat, members: [alice, bob])
        let message = try await appendMessage(store, chat: chat.id, from: alice, text: "react to me")
        let now = Date.millisecondNow()
        #expect(try await store.write { try await $0.addReaction("👍", by: alice, to: message.id, at: now) })
        #expect(try await store.write { try await $0.addReaction("👍", by: alice, to: message.id, at: now) } == false)
        #expect(try await store.write { try await $0.addReaction("👍", by: bob, to: message.id, at: now) })
        #expect(try await store.write { try await $0.addReaction("🔥", by: bob, to: message.id, at: now) })
        let reactions = try await store.read { try await $0.reactions(of: message.id) }
        #expect(reactions.first(where: { $0.emoji == "👍" })?.count == 2)
        #expect(Set(reactions.first(where: { $0.emoji == "👍" })?.users ?? []) == [alice, bob])
        #expect(reactions.first(where: { $0.emoji == "🔥" })?.count == 1)
        #expect(try await store.write { try await $0.removeReaction("🔥", by: bob, from: message.id) })
        #expect(try await store.write { try await $0.removeReaction("🔥", by: bob, from: message.id) } == false)
        #expect(try await store.read { try await $0.message(message.id) }?.reactions.count == 1)
        try await store.write { tx in try await tx.setPinned(true, message: message.id, at: now) }
        #expect(try await store.read { try await $0.pinnedMessages(in: chat.id) }.map(\.id) == [message.id])
        #expect(try await store.read { try await $0.message(message.id) }?.pinned == true)
        try await store.write { tx in try await tx.setPinned(false, message: message.id, at: now) }
        #expect(try await store.read { try await $0.pinnedMessages(in: chat.id) }.isEmpty)
    }

    @Sendable package static func eventLog(_ store: any Store) async throws {
        let alice = UserID.random()
        let bob = UserID.random()
        #expect(try await store.headSeq() == .zero)
        var positions: [EventSeq] = []
        for i in 0..<5 {
            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: alice, readSeq: Int64(i))
            let recipients = i.isMultiple(of: 2) ? [alice, bob] : [alice]
            positions.append(
                try await store.write { tx in try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: recipients, at: Date.millisecondNow()) })
        }
        #expect(positions.map(\.value) == [1, 2, 3, 4, 5])
        #expect(try await store.headSeq() == EventSeq(5))
        #expect(try await store.read { try await $0.events(for: alice, after: .zero, limit: 100) }.map(\.seq.value) == [1, 2, 3, 4, 5])
        #expect(try await store.read { try await $0.events(for: bob, after: .zero, limit: 100) }.map(\.seq.value) == [1, 3, 5])
        #expect(try await store.read { try await $0.events(for: bob, after: EventSeq(3), limit: 100) }.map(\.seq.value) == [5])
        #expect(try await store.read { try await $0.events(for: alice, after: EventSeq(1), limit: 2) }.map(\.seq.value) == [2, 3])
        let committed = try await store.committedEvents(after: EventSeq(1), through: EventSeq(3), limit: 10)
        #expect(committed.map(\.seq.value) == [2, 3])
        #expect(Set(committed.last?.recipients ?? []) == [alice, bob])
        let decoded = try VestnikJSON.decode(ServerEvent.self, from: committed[0].payload)
        #expect(decoded == committed[0].event)
    }

    @Sendable package static func rollback(_ store: any Store) async throws {
        struct Abort: Error {}
        let alice = UserID.random()
        await #expect(throws: Abort.self) {
            try await store.write { tx in
                let event = ServerEvent.sessionRevoked(sessionID: .random())
                _ = try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [alice], at: Date.millisecondNow())
                try await tx.insertUser(UserRecord(user: makeUser("ghost"), passwordHash: nil), searchText: "ghost")
                throw Abort()
            }
        }
        #expect(try await store.headSeq() == .zero)
        #expect(try await store.read { try await $0.user(login: "ghost") } == nil)
        #expect(try await store.read { try await $0.events(for: alice, after: .zero, limit: 10) }.isEmpty)
    }

    /// Many writers append while a reader repeatedly reads "everything after my cursor": the
    /// reader must never see a position before an earlier one is visible (no skipped events).
    @Sendable package static func concurrentWriters(_ store: any Store) async throws {
        let user = UserID.random()
        let writers = 8
        let perWriter = 40
        let observed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for _ in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        let event = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: Int64(i))
                        _ = try await store.write { tx in
                            try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [user], at: Date.millisecondNow())
                        }
                    }
                    return []
                }
            }
            group.addTask {
                var cursor = EventSeq.zero
                var seen: [Int64] = []
                let deadline = ContinuousClock.now + .seconds(60)
                while seen.count < writers * perWriter, ContinuousClock.now < deadline {
                    let after = cursor
                    let page = try await store.read { try await $0.events(for: user, after: after, limit: 50) }
                    for event in page {
                        seen.append(event.seq.value)
                        cursor = event.seq
                    }
                    if page.isEmpty { await Task.yield() }
                }
                return seen
            }
            var all: [[Int64]] = []
            for try await result in group { all.append(result) }
            return all.first { !$0.isEmpty } ?? []
        }
        #expect(observed == Array(1...Int64(writers * perWriter)))
    }

    /// Writes that run at the same time (an adapter may commit them together) are still atomic
    /// one by one: every third one fails after writing (half of those on a duplicate login), and
    /// exactly the others are visible afterwards, with contiguous positions.
    @Sendable package static func concurrentFailures(_ store: any Store) async throws {
        struct Abort: Error {}
        let user = UserID.random()
        _ = try await insertUser(store, makeUser("taken"))
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<60 {
                group.addTask {
                    do {
                        try await store.write { tx in
                            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: Int64(i))
                            _ = try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [user], at: Date.millisecondNow())
                            let login = i % 6 == 0 ? "taken" : "writer\(i)"
                            try await tx.insertUser(UserRecord(user: makeUser(login), passwordHash: nil), searchText: login)
                            if i % 3 == 1 { throw Abort() }
                        }
                        return (i, true)
                    } catch is Abort {
                        return (i, false)
                    } catch let error as StoreError {
                        guard case .duplicate = error else { throw error }
                        return (i, false)
                    }
                }
            }
            var outcomes: [Int: Bool] = [:]
            for try await (i, committed) in group { outcomes[i] = committed }
            return outcomes
        }
        let committed = Set(outcomes.filter(\.value).keys)
        #expect(committed == Set((0..<60).filter { $0 % 6 != 0 && $0 % 3 != 1 }))
        let events = try await store.read { try await $0.events(for: user, after: .zero, limit: 100) }
        #expect(events.map(\.seq.value) == Array(1...Int64(committed.count)))
        let readSeqs = Set(try events.map { logged -> Int in
            if case .receiptUpdated(_, _, let readSeq) = try VestnikJSON.decode(ServerEvent.self, from: logged.payload) { return Int(readSeq) }
            return -1
        })
        #expect(readSeqs == committed)
        for i in 0..<60 where i % 6 != 0 {
            let stored = try await store.read { try await $0.user(login: "writer\(i)") }
            #expect((stored != nil) == committed.contains(i), "writer\(i)")
        }
    }

    @Sendable package static func pruning(_ store: any Store) async throws {
        let user = UserID.random()
        let old = Date.millisecondNow().addingTimeInterval(-7200)
        for i in 0..<4 {
            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: Int64(i))
            _ = try await store.write { tx in
                try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [user], at: i < 3 ? old : Date.millisecondNow())
            }
        }
        // At most `limit` per call, oldest first: two calls for three old events.
        let before = Date.millisecondNow().addingTimeInterval(-3600)
        #expect(try await store.write { try await $0.pruneEvents(before: before, limit: 2) } == 2)
        #expect(try await store.read { try await $0.oldestRetainedSeq() } == EventSeq(3))
        #expect(try await store.read { try await $0.events(for: user, after: .zero, limit: 10) }.map(\.seq.value) == [3, 4])
        #expect(try await store.write { try await $0.pruneEvents(before: before, limit: 2) } == 1)
        #expect(try await store.write { try await $0.pruneEvents(before: before, limit: 2) } == 0)
        #expect(try await store.read { try await $0.oldestRetainedSeq() } == EventSeq(4))
        #expect(try await store.read { try await $0.events(for: user, after: .zero, limit: 10) }.map(\.seq.value) == [4])
        #expect(try await store.headSeq() == EventSeq(4))
    }
}

extension StoreConformance {
    /// Events for the same recipient set share one stored audience (decision 0006): every user
    /// still reads exactly their events, in position order, across several audiences and pages;
    /// the fan-out reads each event's exact recipients; pruning drops unused audiences and a
    /// set used again afterwards is stored again.
    @Sendable package static func sharedAudiences(_ store: any Store) async throws {
        let (a, b, c) = (UserID.random(), UserID.random(), UserID.random())
        let old = Date.millisecondNow().addingTimeInterval(-7200)
        // Positions 1…8; the first three are old.
        let sets: [[UserID]] = [[a, b], [a], [b, a], [b, c], [a, b, c], [a, b], [c], [a, b, a]]
        for (index, recipients) in sets.enumerated() {
            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: a, readSeq: Int64(index))
            _ = try await store.write { tx in
                try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: recipients, at: index < 3 ? old : Date.millisecondNow())
            }
        }
        func seqs(_ user: UserID, after: Int64 = 0, limit: Int = 100) async throws -> [Int64] {
            try await store.read { try await $0.events(for: user, after: EventSeq(after), limit: limit) }.map(\.seq.value)
        }
        #expect(try await seqs(a) == [1, 2, 3, 5, 6, 8])
        #expect(try await seqs(b) == [1, 3, 4, 5, 6, 8])
        #expect(try await seqs(c) == [4, 5, 7])
        // Pages of two: every event once, in order, whatever audience it is in.
        var pages: [[Int64]] = []
        var cursor: Int64 = 0
        while true {
            let page = try await seqs(a, after: cursor, limit: 2)
            guard let last = page.last else { break }
            pages.append(page)
            cursor = last
        }
        #expect(pages == [[1, 2], [3, 5], [6, 8]])
        let committed = try await store.committedEvents(after: .zero, through: EventSeq(8), limit: 100)
        #expect(committed.map { Set($0.recipients) } == sets.map(Set.init))
        #expect(committed.allSatisfy { $0.recipients.count == Set($0.recipients).count })
        // In pages of two: an audience first used on an earlier page still has its recipients.
        var paged: [CommittedEvent] = []
        var after = EventSeq.zero
        while true {
            let page = try await store.committedEvents(after: after, through: EventSeq(8), limit: 2)
            guard let last = page.last else { break }
            paged += page
            after = last.seq
        }
        #expect(paged.map { Set($0.recipients) } == sets.map(Set.init))

        #expect(try await store.write { try await $0.pruneEvents(before: Date.millisecondNow().addingTimeInterval(-3600), limit: 100) } == 3)
        #expect(try await seqs(a) == [5, 6, 8])
        #expect(try await seqs(c) == [4, 5, 7])
        // {a} was only used by a pruned event; using it again stores it again.
        let event = ServerEvent.receiptUpdated(chatID: .random(), userID: a, readSeq: 99)
        let ninth = try await store.write { tx in
            try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [a], at: Date.millisecondNow())
        }
        #expect(ninth == EventSeq(9))
        #expect(try await seqs(a, after: 6) == [8, 9])
        #expect(try await seqs(b, after: 6) == [8])
        #expect(try await store.committedEvents(after: EventSeq(8), through: EventSeq(9), limit: 10).map(\.recipients) == [[a]])

        // A user in many audiences (as after migrating an old log, one per event) pages the
        // same way: positions 10…89, every other one with `a` in a set of its own.
        var expected: [Int64] = []
        for index in 0..<80 {
            let others = (0..<2).map { _ in UserID.random() }
            let recipients = index.isMultiple(of: 2) ? others + [a] : others
            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: a, readSeq: Int64(index))
            let seq = try await store.write { tx in
                try await tx.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: recipients, at: Date.millisecondNow())
            }
            if index.isMultiple(of: 2) { expected.append(seq.value) }
        }
        var collected: [Int64] = []
        var position: Int64 = 9
        while true {
            let page = try await seqs(a, after: position, limit: 7)
            guard let last = page.last else { break }
            #expect(page.count <= 7)
            collected += page
            position = last
        }
        #expect(collected == expected)
        #expect(try await seqs(a, after: 5).prefix(3) == [6, 8, 9])
    }

    /// Text round-trips byte for byte, interior NUL and non-BMP characters included.
    @Sendable package static func textFidelity(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let chat = makeChat(.group, by: alice)
        try await insertChat(store, chat, members: [alice])
        let text = "a\u{0}b — Привет 👨‍👩‍👧 \u{1F600}"
        let message = try await appendMessage(store, chat: chat.id, from: alice, text: text, clientID: "k\u{0}1")
        #expect(try await store.read { try await $0.message(message.id) }?.text == text)
        #expect(try await store.read { try await $0.message(in: chat.id, sender: alice, clientMessageID: "k\u{0}2") } == nil)
    }
}
