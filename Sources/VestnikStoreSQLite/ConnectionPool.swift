import Foundation

/// A connection checked out of a pool.
///
/// `@unchecked Sendable` is safe because the pool hands a box to exactly one task at a time
/// (checkout and checkin are serialized by the pool actor), so the connection and its Swift-side
/// statement cache are never touched by two tasks at once. (SQLite's serialized mode only protects
/// the C side.)
final class ConnectionBox: @unchecked Sendable {
    let connection: SQLiteConnection
    init(_ connection: SQLiteConnection) { self.connection = connection }
}

/// A fixed set of connections handed out one task at a time, with FIFO waiting.
actor ConnectionPool {
    private var free: [ConnectionBox]
    private var waiters: [CheckedContinuation<ConnectionBox, Never>] = []

    init(_ connections: [SQLiteConnection]) {
        free = connections.map(ConnectionBox.init)
    }

    func checkout() async -> ConnectionBox {
        if let box = free.popLast() { return box }
        return await withCheckedContinuation { waiters.append($0) }
    }

    func checkin(_ box: ConnectionBox) {
        if waiters.isEmpty {
            free.append(box)
        } else {
            waiters.removeFirst().resume(returning: box)
        }
    }

    /// Runs `body` with a connection; the connection returns to the pool afterwards.
    nonisolated func with<T: Sendable>(_ body: (ConnectionBox) async throws -> T) async throws -> T {
        let box = await checkout()
        do {
            let result = try await body(box)
            await checkin(box)
            return result
        } catch {
            await checkin(box)
            throw error
        }
    }
}
