import Foundation
import Logging
import NIOPosix
import PostgresNIO
import Synchronization
import Testing
import VestnikCore
import VestnikModel
@testable import VestnikStorePostgres
import VestnikStoreTesting

/// A PostgreSQL server the tests may create and drop databases on, e.g.
/// `postgres://postgres@127.0.0.1:25432/postgres`. Each test gets a database of its own.
let serverURL: String? = ProcessInfo.processInfo.environment["VESTNIK_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

// Without a server the whole suite is reported as skipped (with this reason), not as passed.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"))
struct PostgresStoreConformanceTests {
    @Test("PostgreSQL store conformance", arguments: StoreConformance.allChecks.map(\.0))
    func conformance(_ name: String) async throws {
        let check = try #require(StoreConformance.allChecks.first { $0.0 == name }?.1)
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                try await check(store)
            }
        }
    }

    @Test("two nodes migrating a fresh database at once both succeed")
    func concurrentMigrations() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { nodeA in
                try await withRunningStore(configuration) { nodeB in
                    #expect(try await nodeA.installedSchemaVersion() == 0)
                    async let a: Void = nodeA.migrate()
                    async let b: Void = nodeB.migrate()
                    _ = try await (a, b)
                    #expect(try await nodeA.installedSchemaVersion() == PostgresStore.schemaVersion)
                    #expect(try await nodeB.installedSchemaVersion() == PostgresStore.schemaVersion)
                    // Migrating again is a no-op, and the schema works.
                    try await nodeA.migrate()
                    #expect(try await nodeB.headSeq() == .zero)
                }
            }
        }
    }

    @Test("migration 9 drops the copy of an unedited message's text and keeps an edited message's versions")
    func unEditedVersionsMigrate() async throws {
        try await withFreshDatabase { configuration in
            let alice = StoreConformance.makeUser("alice")
            let chat = StoreConformance.makeChat(.group, by: alice.id)
            let (plain, edited) = try await withRunningStore(configuration) { store in
                try await store.migrate()
                _ = try await StoreConformance.insertUser(store, alice)
                try await StoreConformance.insertChat(store, chat, members: [alice.id])
                let plain = try await StoreConformance.appendMessage(store, chat: chat.id, from: alice.id, text: "plain")
                let edited = try await StoreConformance.appendMessage(store, chat: chat.id, from: alice.id, text: "before")
                _ = try await store.write { try await $0.recordEdit(of: edited.id, text: "after", mentions: [], version: 1, at: Date.millisecondNow()) }
                return (plain.id, edited.id)
            }
            // What a server before migration 9 stored: a version 0 row for every message.
            try await execute(
                "INSERT INTO message_versions (message_id, version, text, created_at) SELECT id, 0, text, created_at FROM messages WHERE id = '\(plain)'",
                on: configuration)
            try await execute("UPDATE schema_version SET version = 8", on: configuration)
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                #expect(try await store.read { try await $0.edits(of: plain) }.map(\.text) == ["plain"])
                #expect(try await store.read { try await $0.edits(of: edited) }.map(\.text) == ["before", "after"])
                let left = try await store.read { tx in
                    try await (tx as? PostgresAccess)?.rows("SELECT count(*) FROM message_versions").first.map { try Columns($0).int(0) }
                }
                #expect(left == 2, "only the edited message's two versions remain")
                // A node of the version before, still running during an upgrade, stores version 0
                // at send: the history still has one version 0.
                try await execute(
                    "INSERT INTO message_versions (message_id, version, text, created_at) SELECT id, 0, text, created_at FROM messages WHERE id = '\(plain)'",
                    on: configuration)
                #expect(try await store.read { try await $0.edits(of: plain) }.map(\.text) == ["plain"])
            }
        }
    }

    @Test("a member added while a send waits for the chat's row lock is in the send's audience")
    func sendSeesMembershipChangeItWaitedFor() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { nodeA in
                try await withRunningStore(configuration) { nodeB in
                    try await nodeA.migrate()
                    let alice = try await StoreConformance.insertUser(nodeA, StoreConformance.makeUser("alice"))
                    let bob = try await StoreConformance.insertUser(nodeA, StoreConformance.makeUser("bob"))
                    let carol = try await StoreConformance.insertUser(nodeA, StoreConformance.makeUser("carol"))
                    let chat = StoreConformance.makeChat(.group, by: alice.id)
                    try await StoreConformance.insertChat(nodeA, chat, members: [alice.id, bob.id])
                    let (locked, lockedSink) = AsyncStream.makeStream(of: Void.self)
                    let releasing = Mutex<ContinuousClock.Instant?>(nil)
                    // Node A adds carol the way every membership change does: chat row locked
                    // first. It holds the lock a moment, so node B's send has to wait for it.
                    let adding = Task {
                        try await nodeA.write { tx in
                            _ = try await tx.chat(chat.id)
                            try await tx.insertMember(ChatMember(userID: carol.id, role: .member, joinedAt: Date.millisecondNow(), readSeq: 0), into: chat.id)
                            lockedSink.yield()
                            try await Task.sleep(for: .milliseconds(300))
                            releasing.withLock { $0 = ContinuousClock.now }
                        }
                    }
                    #expect(try await first(of: locked, within: .seconds(10)) != nil)
                    let context = try await nodeB.write { try await $0.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: nil) }
                    // It did wait for node A's transaction: it returned only after A's body ended
                    // (A's lock lasts until its commit, after that). Measured from A's side, so a
                    // loaded machine delaying this task cannot make it look shorter.
                    let finished = ContinuousClock.now
                    let released = try #require(releasing.withLock { $0 })
                    #expect(finished > released)
                    try await adding.value
                    #expect(Set(try #require(context).memberIDs) == [alice.id, bob.id, carol.id])
                }
            }
        }
    }

    @Test("a send statement that failed to prepare does not keep failing: the store runs it unprepared from then on")
    func failedPreparation() async throws {
        try await withFreshDatabase { configuration in
            var single = configuration
            single.poolSize = 1  // every call gets the same connection unless it was closed
            try await withRunningStore(single) { store in
                try await store.migrate()
                let alice = try await StoreConformance.insertUser(store, StoreConformance.makeUser("alice"))
                let bob = try await StoreConformance.insertUser(store, StoreConformance.makeUser("bob"))
                let chat = StoreConformance.makeChat(.group, by: alice.id)
                try await StoreConformance.insertChat(store, chat, members: [alice.id, bob.id])
                // The function the prepared statement calls is missing when it is first prepared.
                try await execute("ALTER FUNCTION vestnik_sending_context RENAME TO vestnik_sending_context_away", on: configuration)
                await #expect(throws: StoreError.self) {
                    try await store.write { try await $0.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: nil) }
                }
                try await execute("ALTER FUNCTION vestnik_sending_context_away RENAME TO vestnik_sending_context", on: configuration)
                let context = try await store.write { try await $0.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: nil) }
                #expect(Set(try #require(context).memberIDs) == [alice.id, bob.id])
            }
        }
    }

    @Test("listenForEvents receives positions other stores committed, not rolled-back ones, not its own store's")
    func listen() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await withRunningStore(configuration) { otherNode in
                    try await store.migrate()
                    let (received, receivedSink) = AsyncStream.makeStream(of: EventSeq.self)
                    let (ready, readySink) = AsyncStream.makeStream(of: Void.self)
                    let listener = Task {
                        try await store.listenForEvents(onListening: { readySink.yield() }) { seq in receivedSink.yield(seq) }
                    }
                    defer { listener.cancel() }
                    #expect(try await first(of: ready, within: .seconds(10)) != nil)

                    struct Abort: Error {}
                    let user = UserID.random()
                    let event = ServerEvent.sessionRevoked(sessionID: .random())
                    let payload = try VestnikJSON.encode(event)
                    await #expect(throws: Abort.self) {
                        try await otherNode.write { tx in
                            _ = try await tx.appendEvent(event, payload: payload, recipients: [user], at: Date.millisecondNow())
                            throw Abort()
                        }
                    }
                    // The listening store's own commit is published in its process, not announced to it.
                    let own = try await store.write { tx in
                        try await tx.appendEvent(event, payload: payload, recipients: [user], at: Date.millisecondNow())
                    }
                    let seq = try await otherNode.write { tx in
                        try await tx.appendEvent(event, payload: payload, recipients: [user], at: Date.millisecondNow())
                    }
                    #expect(own == EventSeq(1) && seq == EventSeq(2))
                    #expect(try await first(of: received, within: .seconds(10)) == seq)

                    listener.cancel()
                    // A cancelled listener returns instead of throwing.
                    try await listener.value
                }
            }
        }
    }

    /// Core's send reads the chat, bumps `last_message_seq` and writes it back. SQLite runs one
    /// writer at a time; here the chat row lock taken by `chat(_:)` in a write must give the same
    /// result: every concurrent send succeeds, with contiguous chat positions.
    @Test("concurrent sends to one chat all succeed with contiguous chat_seq")
    func concurrentSendsToOneChat() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                let alice = try await StoreConformance.insertUser(store, StoreConformance.makeUser("alice")).id
                let chat = StoreConformance.makeChat(.group, by: alice)
                try await StoreConformance.insertChat(store, chat, members: [alice])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<6 {
                        group.addTask {
                            for i in 0..<5 {
                                try await StoreConformance.appendMessage(store, chat: chat.id, from: alice, text: "w\(writer) m\(i)")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let all = try await store.read { try await $0.messages(in: chat.id, .latest, limit: 100) }
                #expect(all.map(\.chatSeq) == Array(1...30))
                #expect(try await store.read { try await $0.chat(chat.id) }?.lastMessageSeq == 30)
            }
        }
    }

    /// The single writer's round trips run back to back; between two of them the transaction's
    /// code must resume on its connection's event loop, not wake a thread of the global pool
    /// (decision 0009, EventLoopTaskExecutor). Reads stay off the loops.
    @Test("a write transaction's code runs on its connection's event loop, also after a query; a read's does not")
    func writesRunOnTheConnectionsEventLoop() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                let onLoop = try await store.write { tx -> [Bool] in
                    let access = try #require(tx as? PostgresAccess)
                    let before = access.connection.eventLoop.inEventLoop
                    let user = StoreConformance.makeUser("loop")
                    try await tx.insertUser(UserRecord(user: user, passwordHash: "x"), searchText: AccountService.searchText(user))
                    return [before, access.connection.eventLoop.inEventLoop]
                }
                #expect(onLoop == [true, true])
                let readOnLoop = try await store.read { tx -> Bool in
                    let access = try #require(tx as? PostgresAccess)
                    _ = try await tx.user(login: "loop")
                    return access.connection.eventLoop.inEventLoop
                }
                #expect(!readOnLoop)
                #expect(try await store.read { try await $0.user(login: "loop") } != nil)
            }
        }
    }

    /// Decision 0011, "Later": the single writer has a connection and an event-loop thread of
    /// its own, and reads keep using the shared pool.
    @Test("every write runs on the writer's own connection and thread; reads use the shared pool")
    func writerConnection() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                @Sendable func where_(_ tx: any StoreReader) async throws -> (backend: Int64, sharedLoop: Bool) {
                    let access = try #require(tx as? PostgresAccess)
                    let pid = try #require(try await access.rows("SELECT pg_backend_pid()::int8").first.map { try Columns($0).int(0) })
                    let loop = access.connection.eventLoop
                    return (pid, MultiThreadedEventLoopGroup.singleton.makeIterator().contains { $0 === loop })
                }
                var writers = Set<Int64>()
                for _ in 0..<5 {
                    let (backend, shared) = try await store.write { try await where_($0) }
                    writers.insert(backend)
                    #expect(!shared)
                }
                #expect(writers.count == 1)
                let (reader, readShared) = try await store.read { try await where_($0) }
                #expect(!writers.contains(reader))
                #expect(readShared)
            }
        }
    }

    /// A service still writing while the store stops (a shutdown that cancels every service at
    /// once) must get an error, not wait forever: shutdown would hang on it.
    @Test("after the store stopped, writes and reads fail at once instead of waiting forever", .timeLimit(.minutes(1)))
    func stoppedStoreFailsFast() async throws {
        try await withFreshDatabase { configuration in
            let store = PostgresStore(configuration: configuration)
            let running = Task { await store.run() }
            try await store.migrate()
            #expect(try await store.write { try await $0.headSeq() } == .zero)
            running.cancel()
            await running.value
            let started = ContinuousClock.now
            await #expect(throws: StoreError.self) { try await store.write { try await $0.headSeq() } }
            await #expect(throws: StoreError.self) { try await store.read { try await $0.headSeq() } }
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("lookups by text containing U+0000 find nothing instead of failing")
    func nulInLookups() async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                try await StoreConformance.insertUser(store, StoreConformance.makeUser("alice"))
                #expect(try await store.read { try await $0.user(login: "ali\u{0}ce") } == nil)
                #expect(try await store.read { try await $0.searchUsers("a\u{0}", limit: 10) }.isEmpty)
            }
        }
    }
}

/// Pure parsing: runs without a server.
struct PostgresStoreConfigurationTests {
    @Test("URLs are parsed with percent-decoding and defaults; TLS modes that need TLS are refused")
    func configurationParsing() throws {
        let parsed = try PostgresStoreConfiguration(url: "postgresql://vest%40nik:p%3Ass%2Fw@db.example:6543/vest%5Fdb", poolSize: 3)
        #expect(parsed.host == "db.example")
        #expect(parsed.port == 6543)
        #expect(parsed.username == "vest@nik")
        #expect(parsed.password == "p:ss/w")
        #expect(parsed.database == "vest_db")
        #expect(parsed.poolSize == 3)
        let defaults = try PostgresStoreConfiguration(url: "postgres://alice@localhost")
        #expect(defaults.port == 5432)
        #expect(defaults.password == nil)
        #expect(defaults.database == "alice")
        #expect(throws: PostgresConfigurationError.self) { try PostgresStoreConfiguration(url: "postgres://alice@localhost/db?sslmode=require") }
        #expect(throws: PostgresConfigurationError.self) { try PostgresStoreConfiguration(url: "mysql://alice@localhost/db") }
        #expect(throws: PostgresConfigurationError.self) { try PostgresStoreConfiguration(url: "postgres://localhost/db") }
    }
}

// MARK: Harness

/// Runs one statement on its own connection (DDL the store has no call for).
func execute(_ sql: String, on configuration: PostgresStoreConfiguration) async throws {
    let connection = try await PostgresConnection.connect(
        configuration: PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
            database: configuration.database, tls: .disable),
        id: 1, logger: Logger(label: "test"))
    do {
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test"))
    } catch {
        try? await connection.close()
        throw error
    }
    try await connection.close()
}

/// Creates a uniquely named database (`vt_<random>`) on the test server, runs `body` with its
/// configuration and drops it afterwards (`WITH (FORCE)`, so a leftover connection cannot keep it).
func withFreshDatabase<T: Sendable>(_ body: (PostgresStoreConfiguration) async throws -> T) async throws -> T {
    let server = try PostgresStoreConfiguration(url: try #require(serverURL), poolSize: 4)
    let name = "vt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    try await PostgresDatabaseAdmin.createDatabase(name, on: server)
    let result: T
    do {
        result = try await body(server.with(database: name))
    } catch {
        try? await PostgresDatabaseAdmin.dropDatabase(name, on: server)
        throw error
    }
    try await PostgresDatabaseAdmin.dropDatabase(name, on: server)
    return result
}

/// Runs a store's connection pool for the duration of `body`, then shuts it down.
func withRunningStore<T: Sendable>(_ configuration: PostgresStoreConfiguration, _ body: (PostgresStore) async throws -> T)
    async throws -> T
{
    let store = PostgresStore(configuration: configuration)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await store.run() }
        defer { group.cancelAll() }
        return try await body(store)
    }
}

/// The first element of `stream`, or nil if none arrives within `timeout`.
private func first<Element: Sendable>(of stream: AsyncStream<Element>, within timeout: Duration) async throws -> Element? {
    try await withThrowingTaskGroup(of: Element?.self) { group in
        group.addTask {
            for await element in stream { return element }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
