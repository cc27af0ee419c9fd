import Logging
import PostgresNIO
import Synchronization

/// Ends waits on a PostgreSQL server that stopped answering without closing anything.
///
/// Why: a server that is frozen (stopped, swapping, its disk hung) or cut off by the network
/// (a host gone, a firewall dropping packets) leaves every TCP connection open. A statement in
/// flight then waits until TCP gives up, minutes later, and so does the request behind it; the
/// outage handling of decision 0014 starts only on a connection-level failure, which never comes.
/// Every statement and every wait for a connection is therefore registered here while it runs.
/// A sweep closes the connection of a statement unanswered for longer than the timeout, which
/// fails that statement as a connection-level failure (so the request fails with `503` and the
/// store probes the server), and reports a wait for a connection that long as a suspected outage.
/// The probe then decides: a server that answers it keeps its pools. (A server that answers at
/// all ends an overlong statement itself first: the sessions' `statement_timeout` is set below
/// this timeout, see ``PostgresStoreConfiguration/statementTimeoutMilliseconds``.)
///
/// A registry swept periodically, rather than a timer per statement: registering costs two
/// uncontended lock operations, where a timer would cost a scheduled task on an event loop (and a
/// wake-up of that loop from other threads) for every statement.
final class AnswerWatchdog: Sendable {
    private struct Waiting {
        let since: ContinuousClock.Instant
        /// The connection a statement waits on; nil for a request waiting for a connection.
        let connection: PostgresConnection?
    }

    private struct State {
        var nextID = 0
        var waiting: [Int: Waiting] = [:]
    }

    let timeout: Duration
    private let state = Mutex(State())

    init(timeout: Duration) {
        self.timeout = timeout
    }

    /// How often ``closeOverdue(logger:)`` is called: a quarter of the timeout, between 50 ms and 1 s,
    /// so a wait ends at most that much later than the timeout.
    var sweepInterval: Duration {
        min(max(timeout / 4, .milliseconds(50)), .seconds(1))
    }

    /// Registers a wait on `connection` (nil: a request waiting for a connection); pair with ``end(_:)``.
    func begin(_ connection: PostgresConnection?) -> Int {
        state.withLock { state -> Int in
            state.nextID &+= 1
            state.waiting[state.nextID] = Waiting(since: .now, connection: connection)
            return state.nextID
        }
    }

    /// Ends a wait; false if it was overdue (the sweep took it, and closed its connection).
    @discardableResult
    func end(_ id: Int) -> Bool {
        state.withLock { $0.waiting.removeValue(forKey: id) != nil }
    }

    /// Runs `body`, registered as waiting on `connection`.
    func watch<T>(_ connection: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        let id = begin(connection)
        let result: T
        do {
            result = try await body()
        } catch {
            if !end(id) {
                // Closed by the sweep. The statement fails as the close begins; waiting for its
                // end lets the pool learn of it before the connection goes back, so the next
                // request is not handed the closing connection.
                try? await connection.closeFuture.get()
            }
            throw error
        }
        if !end(id) {
            // Answered just as the sweep took it: the connection is closing all the same, and a
            // statement written to it now would be dropped without an answer (see `checkOpen`).
            try? await connection.closeFuture.get()
        }
        return result
    }

    /// Closes the connections of statements waiting longer than the timeout, and counts those
    /// statements and the requests that waited that long for a connection. Each overdue wait is
    /// reported once: it leaves the registry.
    func closeOverdue(logger: Logger) -> (statements: Int, leases: Int) {
        let deadline = ContinuousClock.now - timeout
        let overdue = state.withLock { state -> [Waiting] in
            let ids = state.waiting.compactMap { $0.value.since < deadline ? $0.key : nil }
            return ids.compactMap { state.waiting.removeValue(forKey: $0) }
        }
        var statements = 0
        for case let connection? in overdue.map(\.connection) {
            statements += 1
            connection.close().whenComplete { _ in }
        }
        let leases = overdue.count - statements
        if statements > 0 {
            logger.warning(
                "PostgreSQL did not answer statements in time; their connections were closed",
                metadata: ["vestnik.statements": "\(statements)", "vestnik.timeout": "\(timeout)"])
        }
        if leases > 0 {
            logger.warning(
                "requests waited too long for a PostgreSQL connection; checking the server",
                metadata: ["vestnik.requests": "\(leases)", "vestnik.timeout": "\(timeout)"])
        }
        return (statements, leases)
    }
}
