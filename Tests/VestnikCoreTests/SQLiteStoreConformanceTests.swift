import Foundation
import Testing
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
