import Crypto
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing
import VestnikCore
import VestnikModel
@testable import VestnikStorePostgres
import VestnikStoreTesting

/// Sends that share a batch are answered by one read and stored by one statement on PostgreSQL
/// (decision 0011). These tests line sends up into one batch behind a write that holds the
/// writer, then check what a send must guarantee whatever path it took.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"))
struct PostgresBatchedSendTests {
    /// A store with Core's message service over it, and a way to line writes up.
    struct Fixture {
        let store: PostgresStore
        let messages: MessageService
        let chats: ChatService
        let sessions: SessionService

        init(_ store: PostgresStore) async throws {
            self.store = store
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let hub = EventHub(store: store, startingAfter: try await store.headSeq(), bufferLimit: 1000, logger: logger)
            let context = CoreContext(store: store, hub: hub, logger: logger)
            messages = MessageService(context: context)
            chats = ChatService(context: context)
            sessions = SessionService(
                context: context, hasher: .fastForTests,
                throttle: LoginThrottle(
                    store: store, limits: LoginLimits(failuresPerAccount: 100, attemptsPerAddress: 100, window: 60),
                    secret: SymmetricKey(size: .bits256), logger: logger))
        }

        func user(_ login: String) async throws -> AuthenticatedSession {
            let user = try await StoreConformance.insertUser(store, StoreConformance.makeUser(login))
            return AuthenticatedSession(userID: user.id, sessionID: .random())
        }

        func group(_ members: [AuthenticatedSession]) async throws -> ChatID {
            let chat = StoreConformance.makeChat(.group, by: members[0].userID)
            try await StoreConformance.insertChat(store, chat, members: members.map(\.userID))
            return chat.id
        }

        /// Runs `sends` concurrently, all queued behind one held write, so they form one batch;
        /// returns their outcomes in the order given.
        func inOneBatch(_ sends: [(String, ChatID, AuthenticatedSession, String?)]) async throws -> [Result<(Message, Bool), VestnikError>] {
            let (held, heldSink) = AsyncStream.makeStream(of: Void.self)
            let release = Atomic<Bool>(false)
            let holder = Task {
                try await store.write { _ in
                    heldSink.yield()
                    while !release.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(2)) }
                }
            }
            for await _ in held { break }
            let outcomes = Task {
                await withTaskGroup(of: (Int, Result<(Message, Bool), VestnikError>).self) { group in
                    for (index, (text, chat, sender, clientID)) in sends.enumerated() {
                        group.addTask {
                            do {
                                let sent = try await messages.send(OutgoingMessage(text: text, clientMessageID: clientID), to: chat, as: sender)
                                return (index, .success((sent.0, sent.created)))
                            } catch let error as VestnikError {
                                return (index, .failure(error))
                            } catch {
                                return (index, .failure(VestnikError(.internalError, "unexpected: \(error)")))
                            }
                        }
                    }
                    var results = [Result<(Message, Bool), VestnikError>?](repeating: nil, count: sends.count)
                    for await (index, result) in group { results[index] = result }
                    return results.compactMap { $0 }
                }
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while store.queuedWrites < sends.count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
            #expect(store.queuedWrites == sends.count)
            release.store(true, ordering: .relaxed)
            try await holder.value
            return await outcomes.value
        }

        /// The `message.created` events logged after `start`, in log order; fails on a gap.
        func createdEvents(after start: EventSeq) async throws -> [Message] {
            let head = try await store.headSeq()
            let events = try await store.committedEvents(after: start, through: head, limit: 1000)
            #expect(events.map(\.seq.value) == Array((start.value + 1)...max(start.value, head.value)).filter { $0 > start.value })
            return events.compactMap { event in
                if case .messageCreated(let message) = event.event { return message }
                return nil
            }
        }
    }

    @Test("a batch of sends: contiguous chat positions, one event each without gaps, a retry in the batch returns the original, an outsider is refused")
    func batchedSends() async throws {
        try await withFreshDatabase { configuration in
            var single = configuration
            single.poolSize = 1  // one connection, so its prepared statements show which path ran
            try await withRunningStore(single) { store in
                try await store.migrate()
                let fixture = try await Fixture(store)
                let alice = try await fixture.user("alice"), bob = try await fixture.user("bob")
                let carol = try await fixture.user("carol"), dave = try await fixture.user("dave")
                let big = try await fixture.group([alice, bob, carol])
                let small = try await fixture.group([alice, bob])
                let start = try await store.headSeq()

                let outcomes = try await fixture.inOneBatch([
                    ("a1", big, alice, "x1"), ("b1", big, bob, nil), ("a2", small, alice, nil), ("a1 again", big, alice, "x1"),
                    ("c1", big, carol, nil), ("b2", small, bob, nil),
                ])

                let sent = try outcomes.map { try $0.get() }
                // The two sends with one client message id: one created it, the other got it back.
                let (first, retry) = (try outcomes[0].get(), try outcomes[3].get())
                #expect(first.0.id == retry.0.id && first.1 != retry.1)
                let created = sent.filter(\.1).map(\.0)
                #expect(created.count == 5)

                let bigHistory = try await store.read { try await $0.messages(in: big, .latest, limit: 10) }
                let smallHistory = try await store.read { try await $0.messages(in: small, .latest, limit: 10) }
                #expect(bigHistory.map(\.chatSeq) == [1, 2, 3])
                #expect(Set(bigHistory.map(\.text)) == [first.1 ? "a1" : "a1 again", "b1", "c1"])
                #expect(smallHistory.map(\.chatSeq) == [1, 2])
                #expect(try await store.read { try await $0.chat(big) }?.lastMessageSeq == 3)
                #expect(try await store.read { try await $0.chat(small) }?.lastMessageSeq == 2)
                // Each sender has read up to their own message.
                for message in created {
                    let member = try await store.read { try await $0.member(message.senderID, of: message.chatID) }
                    #expect(member?.readSeq == message.chatSeq)
                }
                // One event per created message, at contiguous positions, each for its chat's members.
                let logged = try await fixture.createdEvents(after: start)
                #expect(Set(logged.map(\.id)) == Set(created.map(\.id)))
                #expect(logged.count == 5)
                let events = try await store.committedEvents(after: start, through: try await store.headSeq(), limit: 100)
                for event in events {
                    guard case .messageCreated(let message) = event.event else { continue }
                    let expected = message.chatID == big ? [alice, bob, carol] : [alice, bob]
                    #expect(Set(event.recipients) == Set(expected.map(\.userID)))
                }
                // The batch ran once, through the batched statements (prepared on the pool's only
                // connection): nothing fell back to the isolated path, which would hide a fault.
                #expect(store.writeStatistics.reruns == 0)
                let prepared = try await store.write { tx in
                    try await (tx as? PostgresAccess)?.rows("SELECT name FROM pg_prepared_statements").map { try Columns($0).text(0) } ?? []
                }
                #expect(prepared.contains("vestnik_sending_contexts") && prepared.contains("vestnik_insert_messages"))

                // An outsider's send in a batch is refused (and, as any failing write, makes its
                // batch run again isolated); the others in it are stored.
                let next = try await fixture.inOneBatch([("b3", big, bob, nil), ("intruder", big, dave, nil), ("c2", big, carol, nil)])
                guard case .failure(let refused) = next[1] else {
                    Issue.record("the outsider's send was stored")
                    return
                }
                #expect(refused.code == .chatNotFound)
                #expect(try next[0].get().0.chatSeq + next[2].get().0.chatSeq == 4 + 5)
                #expect(try await store.read { try await $0.messages(in: big, .latest, limit: 10) }.map(\.chatSeq) == [1, 2, 3, 4, 5])
                #expect(store.writeStatistics.reruns == 1)
            }
        }
    }

    @Test("the batched read answers in the batch's order, members only, each chat's member ids once on its first row; a first row this node cannot read still leaves them to the chat's later rows")
    func batchedReadRows() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                let fixture = try await Fixture(store)
                let alice = try await fixture.user("alice"), bob = try await fixture.user("bob")
                let carol = try await fixture.user("carol"), dave = try await fixture.user("dave")
                let big = try await fixture.group([alice, bob, carol])
                let small = try await fixture.group([alice, bob])
                let original = try await fixture.messages.send(OutgoingMessage(text: "first", clientMessageID: "k"), to: small, as: alice).0
                // Interleaved chats, an outsider (dave) first in one of them, a retry of alice's
                // message, and the same key from carol elsewhere (not a retry).
                let sends: [(ChatID, AuthenticatedSession, String?)] = [
                    (small, dave, nil), (big, bob, nil), (small, alice, "k"), (big, alice, nil), (small, bob, nil), (big, carol, "k"),
                ]
                let intents = sends.map { WriteIntent.send(chat: $0.0, sender: $0.1.userID, clientMessageID: $0.2) }
                /// The function's rows, and what the batch's state answers for each send.
                func read() async throws -> (rows: [(Int64, String, [String]?, Bool, String?)], answers: [DeferredSends.Lookup]) {
                    try await store.write { tx in
                        guard let access = tx as? PostgresAccess else { return ([], []) }
                        let chats = sends.map(\.0.description), senders = sends.map(\.1.userID.description)
                        let keys = sends.map { ByteBuffer(string: $0.2 ?? "") }
                        let rows = try await access.rows(
                            "SELECT * FROM vestnik_sending_contexts(\(chats)::text[], \(senders)::text[], \(keys)::bytea[])")
                        let deferred = try DeferredSends.from(rows: rows, intents: intents, access: access)
                        let answers = sends.map { deferred?.context(chat: $0.0, sender: $0.1.userID, clientMessageID: $0.2) ?? .miss }
                        _ = deferred?.end()
                        return (
                            try rows.map { row in
                                let c = Columns(row)
                                return (try c.int(0), try c.text(10), try c.optionalTexts(14), try c.bool(15), try c.optionalText(16))
                            }, answers
                        )
                    }
                }
                func members(_ answer: DeferredSends.Lookup) -> Set<UserID>? {
                    guard case .answered(let context?) = answer else { return nil }
                    return Set(context.memberIDs)
                }

                let first = try await read()
                #expect(first.rows.map(\.0) == [2, 3, 4, 5, 6])
                #expect(first.rows.map(\.1) == [bob, alice, alice, bob, carol].map(\.userID.description))
                #expect(first.rows.map { $0.2 != nil } == [true, true, false, false, false])
                #expect(Set(first.rows[0].2 ?? []) == Set([alice, bob, carol].map(\.userID.description)))
                #expect(Set(first.rows[1].2 ?? []) == Set([alice, bob].map(\.userID.description)))
                #expect(first.rows.allSatisfy { !$0.3 })
                #expect(first.rows.map(\.4) == [nil, original.id.description, nil, nil, nil])
                // The outsider is refused without a statement; the retry is asked the usual way.
                guard case .answered(nil) = first.answers[0], case .miss = first.answers[2] else {
                    Issue.record("unexpected answers for the outsider or the retry: \(first.answers)")
                    return
                }
                #expect(members(first.answers[1]) == Set([alice, bob, carol].map(\.userID)))
                #expect(members(first.answers[4]) == Set([alice, bob].map(\.userID)))
                #expect(members(first.answers[5]) == Set([alice, bob, carol].map(\.userID)))

                // Bob's membership of `big` in a role this binary does not know (as a newer node
                // might write): his row is skipped, and the chat's later rows still get its members.
                try await execute("UPDATE chat_members SET role = 'role-from-the-future' WHERE user_id = '\(bob.userID)' AND chat_id = '\(big)'", on: configuration)
                let second = try await read()
                #expect(second.rows.first?.2 != nil)
                guard case .answered(nil) = second.answers[1] else {
                    Issue.record("bob's unreadable membership was answered: \(second.answers[1])")
                    return
                }
                #expect(members(second.answers[3]) == Set([alice, bob, carol].map(\.userID)))
                #expect(members(second.answers[5]) == Set([alice, bob, carol].map(\.userID)))
            }
        }
    }

    @Test("a batched insert that fails runs the batch again isolated: the failing send gets its own error, the others are stored")
    func failedBatchedInsert() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                try await execute(
                    """
                    CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF convert_from(NEW.text, 'UTF8') = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$
                    """, on: configuration)
                try await execute(
                    "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_boom()", on: configuration)
                let fixture = try await Fixture(store)
                let alice = try await fixture.user("alice"), bob = try await fixture.user("bob")
                let chat = try await fixture.group([alice, bob])
                let start = try await store.headSeq()

                let outcomes = try await fixture.inOneBatch([("one", chat, alice, nil), ("boom", chat, bob, nil), ("two", chat, bob, "c2")])

                #expect(throws: VestnikError.self) { try outcomes[1].get() }
                let one = try outcomes[0].get(), two = try outcomes[2].get()
                #expect(one.1 && two.1)
                let history = try await store.read { try await $0.messages(in: chat, .latest, limit: 10) }
                #expect(history.map(\.chatSeq) == [1, 2])
                #expect(Set(history.map(\.text)) == ["one", "two"])
                #expect(try await store.read { try await $0.chat(chat) }?.lastMessageSeq == 2)
                #expect(Set(try await fixture.createdEvents(after: start).map(\.id)) == [one.0.id, two.0.id])
                #expect(store.writeStatistics.reruns >= 1)
            }
        }
    }

    @Test("when the batched read fails, the batch runs again without it and every send succeeds")
    func failedBatchedRead() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                let fixture = try await Fixture(store)
                let alice = try await fixture.user("alice"), bob = try await fixture.user("bob")
                let chat = try await fixture.group([alice, bob])
                let start = try await store.headSeq()
                try await execute("ALTER FUNCTION vestnik_sending_contexts RENAME TO vestnik_sending_contexts_away", on: configuration)

                let outcomes = try await fixture.inOneBatch([("one", chat, alice, nil), ("two", chat, bob, nil), ("three", chat, alice, "c3")])

                let sent = try outcomes.map { try $0.get() }
                #expect(sent.allSatisfy { $0.1 })
                let history = try await store.read { try await $0.messages(in: chat, .latest, limit: 10) }
                #expect(history.map(\.chatSeq) == [1, 2, 3])
                #expect(try await fixture.createdEvents(after: start).count == 3)
                #expect(store.writeStatistics.reruns == 1)
            }
        }
    }

    /// Sustained concurrent sends to three chats, some batched and some not, with members
    /// joining one of them meanwhile (each join takes the chat's lock between batches): every
    /// chat keeps contiguous positions, every message has one event at a gap-free position, and
    /// the member list and count match.
    @Test("concurrent senders on three chats, members joining meanwhile: contiguous chat positions, one event per message, no gap")
    func concurrentBatches() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                let fixture = try await Fixture(store)
                var senders: [AuthenticatedSession] = []
                for index in 0..<6 { senders.append(try await fixture.user("sender\(index)")) }
                let chats = [
                    try await fixture.group(senders), try await fixture.group(Array(senders[0..<3])), try await fixture.group(Array(senders[2..<6])),
                ]
                let joiners = [try await fixture.user("joiner0"), try await fixture.user("joiner1")]
                let everyone = senders, owner = senders[0]
                let start = try await store.headSeq()
                let batchesBefore = store.writeStatistics.batches
                let perSender = 25
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, sender) in everyone.enumerated() {
                        group.addTask {
                            // Each sender cycles through the chats it belongs to.
                            let mine = chats.indices.filter { chat in chat == 0 || (chat == 1 && index < 3) || (chat == 2 && index >= 2) }
                            for message in 0..<perSender {
                                let chat = chats[mine[message % mine.count]]
                                _ = try await fixture.messages.send(OutgoingMessage(text: "s\(index) m\(message)"), to: chat, as: sender)
                            }
                        }
                    }
                    group.addTask {
                        // Memberships change while the sends run, through Core as a client's would.
                        for joiner in joiners {
                            try await Task.sleep(for: .milliseconds(20))
                            _ = try await fixture.chats.addMembers([joiner.userID], to: chats[0], as: owner)
                        }
                    }
                    try await group.waitForAll()
                }
                let total = senders.count * perSender
                var stored = 0
                for chat in chats {
                    let history = try await store.read { try await $0.messages(in: chat, .latest, limit: 500) }
                    #expect(history.map(\.chatSeq).sorted() == (0..<history.count).map { Int64($0 + 1) })
                    #expect(try await store.read { try await $0.chat(chat) }?.lastMessageSeq == Int64(history.count))
                    stored += history.count
                }
                #expect(stored == total)
                let logged = try await fixture.createdEvents(after: start)
                #expect(logged.count == total)
                #expect(Set(logged.map(\.id)).count == total)
                #expect(store.writeStatistics.reruns == 0)
                #expect(store.writeStatistics.batches - batchesBefore < total)  // sends did share commits
                let members = try await store.read { try await $0.memberIDs(of: chats[0]) }
                #expect(Set(members) == Set((senders + joiners).map(\.userID)))
                #expect(try await store.read { try await $0.chat(chats[0]) }?.memberCount == senders.count + joiners.count)
            }
        }
    }
}
