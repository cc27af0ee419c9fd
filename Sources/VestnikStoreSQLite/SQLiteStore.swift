import Foundation
import VestnikCore
import VestnikModel

/// The embedded store: SQLite in WAL mode, one writer connection and a pool of readers.
///
/// Writes are serialized through the single writer (SQLite allows one writer anyway), which is
/// also what makes log positions commit in order: the position counter is read and advanced
/// inside the write transaction (concurrent writes are committed together, see
/// ``GroupCommit``). Other processes (the admin CLI) may write to the same file; they
/// take SQLite's file lock, so the same holds across processes. `synchronous=FULL`: a commit that
/// returned is on disk.
package final class SQLiteStore: Store {
    private let writer: GroupCommit<SQLiteAccess>
    private let readers: ConnectionPool
    package let path: String

    /// Opens (creating if needed) the database at `path` and migrates it.
    /// - Parameter path: a file path, or `:memory:`-like shared names are not supported: tests use
    ///   a temporary directory.
    package init(path: String, readerCount: Int = 4) throws {
        self.path = path
        let writerConnection = try SQLiteConnection(path: path, readOnly: false)
        try writerConnection.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Self.migrate(writerConnection)
        let writerPool = ConnectionPool([writerConnection])
        writer = GroupCommit(
            // Intents are for adapters that pay a round trip per statement; SQLite's cost none.
            transaction: { _, writes in
                try await writerPool.with { box in
                    // IMMEDIATE takes the write lock up front, so the transaction never fails
                    // half-way because another process (the admin CLI) started writing.
                    try box.connection.query("BEGIN IMMEDIATE")
                    do {
                        try await writes(SQLiteAccess(box: box))
                        try box.connection.query("COMMIT")
                    } catch {
                        try? box.connection.exec("ROLLBACK")
                        throw error
                    }
                }
            },
            savepoint: { access, step in
                switch step {
                case .open: try access.box.connection.query("SAVEPOINT write")
                case .release: try access.box.connection.query("RELEASE write")
                case .rollBack:
                    try access.box.connection.query("ROLLBACK TO write")
                    try access.box.connection.query("RELEASE write")
                }
            })
        var readerConnections: [SQLiteConnection] = []
        for _ in 0..<max(1, readerCount) {
            let connection = try SQLiteConnection(path: path, readOnly: true)
            try connection.exec("PRAGMA foreign_keys=ON;")
            readerConnections.append(connection)
        }
        readers = ConnectionPool(readerConnections)
    }

    /// The schema version after migration.
    package static let schemaVersion = SQLiteMigrations.all.count

    private static func migrate(_ connection: SQLiteConnection) throws {
        try connection.exec("BEGIN IMMEDIATE")
        do {
            let current = Int(try connection.query("PRAGMA user_version").first?.int(0) ?? 0)
            guard current <= SQLiteMigrations.all.count else {
                throw StoreError.backend("the database has schema version \(current), newer than this binary (\(SQLiteMigrations.all.count))")
            }
            for (index, migration) in SQLiteMigrations.all.enumerated() where index >= current {
                try connection.exec(migration)
                try connection.exec("PRAGMA user_version = \(index + 1)")
            }
            try connection.exec("COMMIT")
        } catch {
            try? connection.exec("ROLLBACK")
            throw error
        }
    }

    package func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T {
        try await transaction(on: readers, begin: "BEGIN") { try await body($0) }
    }

    package func write<T: Sendable>(intent: WriteIntent?, _ body: @escaping @Sendable (any StoreWriter) async throws -> T) async throws -> T {
        try await writer.write { try await body($0) }
    }

    // Login attempts: one writer, so a count's row lock cannot hold up another node; each runs
    // as a write of its own (durable before the password is checked).

    package func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Date?) async throws -> AttemptCount {
        let now = (now ?? Date()).millisecondsSince1970
        return try await writer.write { try $0.countAttempt(under: key, limit: limit, at: now) }
    }

    package func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Date, at now: Date?) async throws {
        let now = (now ?? Date()).millisecondsSince1970
        let until = countedUntil.millisecondsSince1970
        try await writer.write { try $0.uncountAttempt(under: key, limit: limit, countedUntil: until, at: now) }
    }

    package func forgetAttempts(under key: AttemptKey) async throws {
        try await writer.write { try $0.forgetAttempts(under: key) }
    }

    package func pruneAttempts(before now: Date?, limit: Int) async throws -> Int {
        let now = (now ?? Date()).millisecondsSince1970
        return try await writer.write { try $0.pruneAttempts(before: now, limit: limit) }
    }

    /// Writes waiting for the next batch (tests line writes up into one batch with it).
    package var queuedWrites: Int { writer.queuedWrites }

    package var writeStatistics: WriteBatchStatistics { writer.statistics }

    /// Runs `body` between `begin` and COMMIT on a connection from `pool`; rolls back if it throws.
    private func transaction<T: Sendable>(
        on pool: ConnectionPool, begin: String, _ body: @Sendable (SQLiteAccess) async throws -> T
    ) async throws -> T {
        try await pool.with { box in
            try box.connection.query(begin)
            do {
                let result = try await body(SQLiteAccess(box: box))
                try box.connection.query("COMMIT")
                return result
            } catch {
                try? box.connection.exec("ROLLBACK")
                throw error
            }
        }
    }

    package func committedEvents(after: EventSeq, through: EventSeq, limit: Int) async throws -> [CommittedEvent] {
        try await readers.with { box in
            try SQLiteAccess(box: box).committedEvents(after: after, through: through, limit: limit)
        }
    }

    package func headSeq() async throws -> EventSeq {
        try await read { try await $0.headSeq() }
    }
}
