import Foundation
import Testing
import CSQLite
import VestnikCore
import VestnikStoreSQLite
import VestnikStoreTesting

@Suite struct SQLiteStoreConformanceTests {
    @Test("SQLite store conformance", arguments: StoreConformance.allChecks.map(\.0))
    func conformance(_ name: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let check = try #require(StoreConformance.allChecks.first { $0.0 == name }?.1)
        try await check(store)
    }

    @Test("users by e-mail use the users_by_email index, not a table scan")
    func emailLookupIsIndexed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
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
}
