import Foundation
import Testing
import CSQLite
import VestnikCore
import VestnikModel
import VestnikStoreSQLite
import VestnikStoreTesting

@Suite struct SQLiteStoreConformanceTests {
    /// A fresh directory for one test's database; the test removes it.
    private static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("SQLite store conformance", arguments: StoreConformance.allChecks.map(\.0))
    func conformance(_ name: String) async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let check = try #require(StoreConformance.allChecks.first { $0.0 == name }?.1)
        try await check(store)
    }

    @Test("users by e-mail use the users_by_email index, not a table scan")
    func emailLookupIsIndexed() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite").path
        _ = try SQLiteStore(path: path)
        var db: OpaquePointer?
        #expect(sqlite3_open(path, &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        var statement: OpaquePointer?
        #expect(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT id FROM users WHERE lower(email) = 'a@b.c'", -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        var plan: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            if let text = sqlite3_column_text(statement, 3) { plan.append(String(cString: text)) }
        }
        #expect(plan.contains { $0.contains("users_by_email") }, "\(plan)")
    }

    @Test("reopening a database keeps its data and schema version")
    func reopen() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite").path
        let user = StoreConformance.makeUser("keeper")
        do {
            let store = try SQLiteStore(path: path)
            try await StoreConformance.insertUser(store, user)
        }
        let reopened = try SQLiteStore(path: path)
        #expect(try await reopened.read { try await $0.user(login: "keeper") }?.user == user)
    }

    @Test("migration 9 drops the copy of an unedited message's text and keeps an edited message's versions")
    func unEditedVersionsMigrate() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite").path
        let alice = StoreConformance.makeUser("alice")
        let chat = StoreConformance.makeChat(.group, by: alice.id)
        var plain: Message?
        var edited: Message?
        do {
            let store = try SQLiteStore(path: path)
            _ = try await StoreConformance.insertUser(store, alice)
            try await StoreConformance.insertChat(store, chat, members: [alice.id])
            plain = try await StoreConformance.appendMessage(store, chat: chat.id, from: alice.id, text: "plain")
            edited = try await StoreConformance.appendMessage(store, chat: chat.id, from: alice.id, text: "before")
            let editedID = try #require(edited?.id)
            _ = try await store.write { try await $0.recordEdit(of: editedID, text: "after", mentions: [], version: 1, at: Date.millisecondNow()) }
        }
        // What a server before migration 9 stored: a version 0 row for every message.
        var db: OpaquePointer?
        #expect(sqlite3_open(path, &db) == SQLITE_OK)
        let plainID = try #require(plain?.id)
        let sql = """
            INSERT INTO message_versions (message_id, version, text, created_at) SELECT id, 0, text, created_at FROM messages WHERE id = '\(plainID)';
            PRAGMA user_version = 8;
            """
        #expect(sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        let store = try SQLiteStore(path: path)
        #expect(try await store.read { try await $0.edits(of: plainID) }.map(\.text) == ["plain"])
        let editedID = try #require(edited?.id)
        #expect(try await store.read { try await $0.edits(of: editedID) }.map(\.text) == ["before", "after"])
        var check: OpaquePointer?
        #expect(sqlite3_open(path, &check) == SQLITE_OK)
        defer { sqlite3_close(check) }
        var statement: OpaquePointer?
        #expect(sqlite3_prepare_v2(check, "SELECT count(*) FROM message_versions", -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        #expect(sqlite3_column_int64(statement, 0) == 2, "only the edited message's two versions remain")
        // A node of the version before, still running during an upgrade, stores version 0 at
        // send: the history still has one version 0.
        #expect(sqlite3_exec(check, "INSERT INTO message_versions (message_id, version, text, created_at) SELECT id, 0, text, created_at FROM messages WHERE id = '\(plainID)'", nil, nil, nil) == SQLITE_OK)
        #expect(try await store.read { try await $0.edits(of: plainID) }.map(\.text) == ["plain"])
    }

    @Test("under continuous writes the write-ahead log is copied into the database file and restarts instead of growing")
    func logStaysBounded() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        let database = env.directory.appendingPathComponent("test.sqlite").path
        func size(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0 }
        let padding = String(repeating: "x", count: 3000)
        // ~2 pages per write: several times the 1,000-page checkpoint threshold.
        for round in 0..<3000 {
            let event = ServerEvent.typing(chatID: .random(), userID: user)
            let payload = Data((padding + "\(round)").utf8)
            _ = try await env.store.write { try await $0.appendEvent(event, payload: payload, recipients: [user], at: Date.millisecondNow()) }
        }
        // (Checkpoints run inside commits; the wait only matters if they ever move elsewhere.)
        var copied = size(database)
        for _ in 0..<50 where copied < 3000 * 3000 {
            try await Task.sleep(for: .milliseconds(100))
            copied = size(database)
        }
        #expect(copied >= 3000 * 3000, "database file \(copied) bytes")
        // The log was restarted from its beginning after complete copies, so it stays far below
        // the ~25 MB that 3,000 writes of this size appended. (A checkpoint on a thread of its
        // own, tried to keep it off the commit path, never completed between two back-to-back
        // commits, so the log never restarted: 76 MB here.)
        #expect(size(database + "-wal") < 12_000_000, "log \(size(database + "-wal")) bytes")
    }
}
