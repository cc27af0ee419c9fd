import Synchronization

/// A connection checked out of a pool.
///
/// `@unchecked Sendable` is safe because the pool hands a box to exactly one task at a time
/// (checkout and checkin are serialized by the pool's lock), so the connection and its Swift-side
/// statement cache are never touched by two tasks at once. (SQLite's serialized mode only protects
/// the C side.)
final class ConnectionBox: @unchecked Sendable {
    let connection: SQLiteConnection
    init(_ connection: SQLiteConnection) { self.connection = connection }
}

/// A fixed set of connections handed out one task at a time, with FIFO waiting.
///
/// A lock rather than an actor: a free connection is taken and returned without suspending or
/// hopping to another executor; only a task that finds none free waits.
final class ConnectionPool: Sendable {
    private struct State {
        var free: [ConnectionBox]
        var waiters: [CheckedContinuation<ConnectionBox, Never>] = []
    }

    private let state: Mutex<State>

    init(_ connections: [SQLiteConnection]) {
        state = Mutex(State(free: connections.map(ConnectionBox.init)))
    }

    func checkout() async -> ConnectionBox {
        if let box = state.withLock({ $0.free.popLast() }) { return box }
        return await withCheckedContinuation { continuation in
            // Checked again under the lock: a checkin may have happened since.
            let box = state.withLock { state -> ConnectionBox? in
                if let box = state.free.popLast() { return box }
                state.waiters.append(continuation)
                return nil
            }
            if let box { continuation.resume(returning: box) }
        }
    }

    func checkin(_ box: ConnectionBox) {
        let waiter = state.withLock { state -> CheckedContinuation<ConnectionBox, Never>? in
            if state.waiters.isEmpty {
                state.free.append(box)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: box)
    }

    /// Runs `body` with a connection; the connection returns to the pool afterwards.
    func with<T: Sendable>(_ body: (ConnectionBox) async throws -> T) async throws -> T {
        let box = await checkout()
        defer { checkin(box) }
        return try await body(box)
    }
}
