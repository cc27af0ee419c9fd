import CSQLite
import Foundation
import VestnikCore

/// A value bound to or read from SQLite.
package enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// One result row, read by column index in the order of the SELECT.
///
/// A view into the values of every row of its result, stored in one array: a query returning
/// a chat's members (every send reads them) then costs one allocation, not one per row.
package struct SQLRow: Sendable {
    private let values: ArraySlice<SQLValue>

    init(_ values: ArraySlice<SQLValue>) { self.values = values }

    private func value(_ i: Int) -> SQLValue { values[values.startIndex + i] }

    package func int(_ i: Int) -> Int64 {
        if case .integer(let v) = value(i) { return v }
        if case .real(let v) = value(i) { return Int64(v) }
        return 0
    }
    package func optionalInt(_ i: Int) -> Int64? {
        if case .null = value(i) { return nil }
        return int(i)
    }
    package func text(_ i: Int) -> String {
        switch value(i) {
        case .text(let v): return v
        case .integer(let v): return String(v)
        case .blob(let v): return String(decoding: v, as: UTF8.self)
        default: return ""
        }
    }
    package func optionalText(_ i: Int) -> String? {
        if case .null = value(i) { return nil }
        return text(i)
    }
    package func blob(_ i: Int) -> [UInt8] {
        switch value(i) {
        case .blob(let v): return v
        case .text(let v): return Array(v.utf8)
        default: return []
        }
    }
}

/// One SQLite connection with a prepared-statement cache.
///
/// Not thread-safe by itself: the pool hands it to one task at a time. It is opened in SQLite's
/// serialized threading mode as well, so even a misuse cannot corrupt memory.
package final class SQLiteConnection {
    private var handle: OpaquePointer?
    private var statements: [StatementKey: OpaquePointer] = [:]

    package init(path: String, readOnly: Bool) throws {
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_FULLMUTEX
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw StoreError.backend("cannot open \(path): \(message)")
        }
        handle = db
        sqlite3_busy_timeout(db, 10_000)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements without results (schema, pragmas).
    package func exec(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "error \(rc)"
            sqlite3_free(error)
            throw StoreError.backend(message)
        }
    }

    /// Runs a statement and returns every row.
    @discardableResult
    package func query(_ sql: String, _ bindings: [SQLValue] = []) throws -> [SQLRow] {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in bindings.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, position)
            case .integer(let v): rc = sqlite3_bind_int64(statement, position, v)
            case .real(let v): rc = sqlite3_bind_double(statement, position, v)
            case .text(let v):
                // Explicit byte length: text with an interior NUL is stored whole, not truncated.
                // (The bridged C string holds every UTF-8 byte, interior NULs included.)
                rc = sqlite3_bind_text(statement, position, v, Int32(v.utf8.count), SQLITE_TRANSIENT)
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(statement, position, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
            }
            guard rc == SQLITE_OK else { throw error(rc) }
        }
        var values: [SQLValue] = []
        var rowCount = 0
        let columns = sqlite3_column_count(statement)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc) }
            rowCount += 1
            for column in 0..<columns {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: values.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    if count > 0, let pointer = sqlite3_column_text(statement, column) {
                        values.append(.text(String(decoding: UnsafeRawBufferPointer(start: pointer, count: count), as: UTF8.self)))
                    } else {
                        values.append(.text(""))
                    }
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    if count > 0, let pointer = sqlite3_column_blob(statement, column) {
                        values.append(.blob(Array(UnsafeRawBufferPointer(start: pointer, count: count))))
                    } else {
                        values.append(.blob([]))
                    }
                default: values.append(.null)
                }
            }
        }
        let width = Int(columns)
        return (0..<rowCount).map { SQLRow(values[($0 * width)..<(($0 + 1) * width)]) }
    }

    /// Rows changed by the last statement.
    package var changes: Int { Int(sqlite3_changes(handle)) }

    private func prepare(_ sql: String) throws -> OpaquePointer {
        if let cached = statements[StatementKey(sql)] { return cached }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc) }
        statements[StatementKey(sql)] = statement
        return statement
    }

    private func error(_ rc: Int32) -> StoreError {
        let message = String(cString: sqlite3_errmsg(handle))
        if rc & 0xFF == SQLITE_CONSTRAINT, message.contains("UNIQUE") {
            if message.contains("client_message_id") { return .duplicate(what: "client_message_id") }
            if message.contains("login") { return .duplicate(what: "login") }
            if message.contains("unique_key") { return .duplicate(what: "chat") }
            return .duplicate(what: message)
        }
        return .backend("sqlite error \(rc): \(message)")
    }
}

/// A statement's text as the cache's key, hashed by its length and ends only.
///
/// Why: every statement is looked up by its text, and hashing all of a long statement's bytes
/// (SipHash) on each execution showed in the writer's profile. Equality still compares the whole
/// text, so two statements sharing a hash only cost a comparison; the same string literal compares
/// by identity.
private struct StatementKey: Hashable {
    let sql: String

    init(_ sql: String) { self.sql = sql }

    func hash(into hasher: inout Hasher) {
        let utf8 = sql.utf8
        hasher.combine(utf8.count)
        for byte in utf8.prefix(24) { hasher.combine(byte) }
        for byte in utf8.suffix(24) { hasher.combine(byte) }
    }
}

// SQLITE_TRANSIENT is a macro C cannot export to Swift: it is the destructor value -1.
private let SQLITE_TRANSIENT = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
