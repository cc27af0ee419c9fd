import Foundation
import Logging
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization
import VestnikCore
import VestnikModel

/// The shared store for several nodes: PostgreSQL through PostgresNIO's pooled client.
///
/// Semantics follow ``VestnikStoreSQLite`` query by query (the store conformance suite runs
/// against both). What PostgreSQL changes:
/// - Reads run in `REPEATABLE READ READ ONLY` transactions, one consistent snapshot per closure.
/// - Writes run in `READ COMMITTED` transactions. Log positions still commit in order and without
///   gaps: `appendEvent` advances the single `log_state` row, whose row lock serializes
///   event-producing transactions until they end (docs/decisions/0001-ordered-event-log.md).
///   Chat and user rows read inside a write are locked too (see `PostgresAccess.locking`).
/// - `appendEvent` also sends `NOTIFY vestnik_events, '<seq>'`, delivered at commit, so other nodes
///   learn about new positions without polling (``listenForEvents(onListening:_:)``).
/// - Concurrent writes of one node are committed together (``GroupCommit``); a batch in which a
///   write failed runs again with a savepoint per write.
/// - A failed transaction is rolled back and its error surfaces (a lost connection is
///   ``StoreError/unavailable(_:)``); a deadlock or serialization failure is
///   ``StoreError/contention(_:)``, whose batch ``GroupCommit`` runs once more.
/// - While the server is unreachable requests fail at once, and the store reconnects within
///   ``PostgresPools/probeInterval`` of its return (``PostgresPools``, decision 0014).
///
/// The client must be running: add the store to the `ServiceGroup` (it is a `Service`) or call
/// ``run()`` in a long-lived task, before ``migrate()`` or any query. Call ``run()`` once.
package final class PostgresStore: Store, Service {
    /// The `LISTEN/NOTIFY` channel that announces new log positions.
    package static let eventChannel = "vestnik_events"
    /// The schema version this binary migrates to (numbered like the SQLite adapter's).
    package static let schemaVersion = PostgresMigrations.all.count
    /// The advisory lock key that serializes migrations across nodes ("VESTNIK1").
    static let migrationLockKey: Int64 = 0x5645_5354_4E49_4B31

    /// The pooled clients (``PostgresPools/Generation``). The single writer has its own
    /// connection, on an event-loop thread of its own, where the group commit's leader runs too
    /// (decision 0011, "Later"): a batch's round trips, its commit and the next batch's start
    /// follow each other on one thread, with no pool lease and no hop between threads per batch,
    /// and client sockets never delay the writer's replies.
    private let pools: PostgresPools
    private let writerLoopGroup: MultiThreadedEventLoopGroup
    /// Tags this store's event notifications, so its own listener can skip them: this process
    /// publishes its own commits in memory already (``listenForEvents(onListening:_:)``).
    private let origin = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private let logger: Logger
    private let writer: GroupCommit<PostgresAccess>
    package let configuration: PostgresStoreConfiguration

    /// Creates the store; it connects lazily, once ``run()`` is running.
    package init(configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "vestnik.store.postgres")) {
        self.configuration = configuration
        self.logger = logger
        let writerLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.writerLoopGroup = writerLoopGroup
        let pools = PostgresPools(configuration: configuration, writerLoopGroup: writerLoopGroup, logger: logger, drainTimeout: Self.drainTimeout)
        self.pools = pools
        let origin = origin
        // Concurrent writes of this node share one transaction (see ``GroupCommit``): they would
        // otherwise queue on the same chat row and `log_state` locks anyway, each holding them
        // across its own round trips and commit. At most 64 writes per batch: when a batch runs
        // with savepoints (after a failed write), every write but the first opens a
        // subtransaction, and PostgreSQL caches 64 subtransaction ids per backend; past that,
        // every session's visibility checks consult `pg_subtrans`.
        writer = GroupCommit(
            maxBatch: 64,
            transaction: { intents, writes in
                // The single writer's round trips run back to back: its code runs on the
                // connection's event loop (EventLoopTaskExecutor).
                try await Self.transaction(
                    pools: pools, writer: true, logger: logger, origin: origin, begin: "BEGIN ISOLATION LEVEL READ COMMITTED", locking: true,
                    onConnectionLoop: true
                ) {
                    // Announced sends: their contexts in one round trip, their inserts in another
                    // (decision 0011). `beforeCommit` writes the held inserts; settling again here
                    // (a no-op then) keeps this transaction from committing without them.
                    let access = try await $0.deferringSends(intents)
                    try await writes(access)
                    try await access.settleDeferredSends()
                }
            },
            savepoint: { access, step in
                // Savepoints are left open rather than released: each write's `SAVEPOINT write`
                // nests inside the previous one's and `ROLLBACK TO` finds the newest of that name,
                // which is the failing write's own. Releasing would cost a round trip per write
                // and change nothing the commit keeps (a released subtransaction keeps its id).
                switch step {
                case .open: try await access.rows("SAVEPOINT write")
                case .release: break
                case .rollBack: try await access.rows("ROLLBACK TO SAVEPOINT write")
                }
            },
            beforeCommit: { access in try await access.settleDeferredSends() },
            leaderExecutor: EventLoopTaskExecutor(writerLoopGroup.next()))
    }

    /// Creates the store from a `postgres://user:password@host:port/database` URL.
    package convenience init(url: String, poolSize: Int = 8, logger: Logger = Logger(label: "vestnik.store.postgres")) throws {
        self.init(configuration: try PostgresStoreConfiguration(url: url, poolSize: poolSize), logger: logger)
    }

    /// Runs the connection pools until the task is cancelled or a graceful shutdown is signalled.
    /// Queries wait for connections while this is not running.
    ///
    /// Stopping takes three steps: the gate refuses new requests, the requests in flight finish
    /// (for up to ``drainTimeout``), and only then do the pools stop. The order matters because
    /// a stopping PostgresNIO pool closes its connections under the requests still using them,
    /// and a query written to a closed connection never completes: its write is dropped with
    /// nobody left to fail it. A server's shutdown waits for its background services, which are
    /// often mid-query when it begins, so such a query used to hang the whole shutdown.
    ///
    /// A request still running after the drain loses its connection anyway; only
    /// ``PostgresConnection/checkOpen()`` then stands between it and that hang. Writes queued in
    /// the group commit but not yet in a transaction when the gate closes fail at once ("the
    /// database connection pool has stopped"), as does every request made later.
    package func run() async {
        pools.start()
        // Returns at a graceful shutdown, throws at cancellation: either way it is time to stop.
        try? await gracefulShutdown()
        await pools.stop()
    }

    /// How long a stopping store lets requests in flight finish before it closes their
    /// connections anyway: short enough to fit a supervisor's stop grace (often 10 s) with the
    /// rest of the shutdown.
    static let drainTimeout = Duration.seconds(5)

    deinit {
        // Not in `run()`: the group-commit leader of a write made after `run()` returned still
        // starts on this loop and must reach the closed gate, which fails it at once; on a loop
        // already shut down it would never run, and its caller would wait forever.
        writerLoopGroup.shutdownGracefully { _ in }
    }

    // MARK: Schema

    /// Brings the schema to ``schemaVersion``; safe when several nodes start at once.
    ///
    /// One transaction holds `pg_advisory_xact_lock` for the whole migration, so concurrent
    /// callers apply it one after another: the second finds the version already current. DDL is
    /// transactional in PostgreSQL, so a failed migration leaves nothing behind.
    package func migrate() async throws {
        // Without a timeout, on either side: a migration may wait for another node's (the
        // advisory lock) or rewrite a large table, both longer than the answer timeout.
        try await transaction(begin: "BEGIN ISOLATION LEVEL READ COMMITTED", locking: false, watched: false) { access in
            try await access.rows("SET LOCAL statement_timeout = 0")
            try await access.rows("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))")
            try await access.rows(
                "CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)")
            try await access.rows("INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
            let current = try await Self.version(access)
            guard current <= Self.schemaVersion else {
                throw StoreError.backend(
                    "the database has schema version \(current), newer than this binary (\(Self.schemaVersion))")
            }
            for (index, statements) in PostgresMigrations.all.enumerated() where index >= current {
                for statement in statements {
                    try await access.rows(PostgresQuery(unsafeSQL: statement))
                }
                try await access.rows("UPDATE schema_version SET version = \(Int64(index + 1)) WHERE id = 1")
                logger.info("applied PostgreSQL migration", metadata: ["version": "\(index + 1)"])
            }
        }
    }

    /// The schema version recorded in the database (0 before the first migration), for health
    /// checks and tests.
    package func installedSchemaVersion() async throws -> Int {
        try await transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", locking: false) { access in
            guard
                try await access.rows("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_version'")
                    .first != nil
            else { return 0 }
            return try await Self.version(access)
        }
    }

    private static func version(_ access: PostgresAccess) async throws -> Int {
        guard let row = try await access.rows("SELECT version FROM schema_version WHERE id = 1").first else { return 0 }
        return Int(try Columns(row).int(0))
    }

    // MARK: Store

    package func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T {
        try await transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", locking: false) { try await body($0) }
    }

    package func write<T: Sendable>(intent: WriteIntent?, _ body: @escaping @Sendable (any StoreWriter) async throws -> T) async throws -> T {
        try await writer.write(intent: intent) { try await body($0) }
    }

    /// Writes waiting for the next batch (tests line writes up into one batch with it).
    package var queuedWrites: Int { writer.queuedWrites }

    package var writeStatistics: WriteBatchStatistics { writer.statistics }

    package func committedEvents(after: EventSeq, through: EventSeq, limit: Int) async throws -> [CommittedEvent] {
        // One statement reads the events and their recipients in one snapshot.
        try await statement { try await $0.committedEvents(after: after, through: through, limit: limit) }
    }

    package func headSeq() async throws -> EventSeq {
        try await statement { try await $0.headSeq() }
    }

    package func authenticationRecord(tokenHash: [UInt8]) async throws -> AuthenticationRecord? {
        try await statement { try await $0.authenticationRecord(tokenHash: tokenHash) }
    }

    package func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Date?) async throws -> AttemptCount {
        try await statement { try await $0.countAttempt(under: key, limit: limit, at: now) }
    }

    package func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Date, at now: Date?) async throws {
        try await statement { try await $0.uncountAttempt(under: key, limit: limit, countedUntil: countedUntil, at: now) }
    }

    package func forgetAttempts(under key: AttemptKey) async throws {
        try await statement { try await $0.forgetAttempts(under: key) }
    }

    package func pruneAttempts(before now: Date?, limit: Int) async throws -> Int {
        try await statement { try await $0.pruneAttempts(before: now, limit: limit) }
    }

    /// Runs one statement on a pooled connection outside a transaction block. A single statement
    /// is atomic and reads one snapshot by itself, so `BEGIN` and `COMMIT` around it would only
    /// add two round trips.
    private func statement<T: Sendable>(_ body: (PostgresAccess) async throws -> T) async throws -> T {
        return try await pools.withConnection { connection in
            try await body(PostgresAccess(connection: connection, logger: logger, locking: false, origin: origin, watchdog: pools.watchdog))
        }
    }

    /// Leases a connection, opens a transaction with `begin`, runs `body`, commits; rolls back if
    /// anything throws.
    ///
    /// If even the rollback fails the connection's state is unknown, so it is closed rather than
    /// returned to the pool in an open transaction; the pool replaces it.
    /// - Parameter watched: false for work that may legitimately outlast the answer timeout
    ///   (``AnswerWatchdog``).
    private func transaction<T: Sendable>(
        begin: PostgresQuery, locking: Bool, watched: Bool = true, _ body: (PostgresAccess) async throws -> T
    ) async throws -> T {
        try await Self.transaction(
            pools: pools, writer: false, logger: logger, origin: origin, begin: begin, locking: locking, watched: watched, body)
    }

    /// - Parameters:
    ///   - writer: on the single writer's connection, not the shared pool.
    ///   - onConnectionLoop: run the transaction's code on the connection's event loop
    ///   (see ``EventLoopTaskExecutor``); only for the single writer, whose round trips are what
    ///   bounds throughput. Reads stay on the global pool: a history page may decode large extras,
    ///   and reads run concurrently, which one loop thread would serialize.
    private static func transaction<T: Sendable>(
        pools: PostgresPools, writer: Bool, logger: Logger, origin: String, begin: PostgresQuery, locking: Bool, watched: Bool = true,
        onConnectionLoop: Bool = false, _ body: (PostgresAccess) async throws -> T
    ) async throws -> T {
        return try await pools.withConnection(writer ? .writer : .shared) { connection in
            try await withTaskExecutorPreference(onConnectionLoop ? EventLoopTaskExecutor(connection.eventLoop) : nil) {
                let access = PostgresAccess(
                    connection: connection, logger: logger, locking: locking, origin: origin, watchdog: watched ? pools.watchdog : nil)
                try await access.rows(begin)
                do {
                    let result = try await body(access)
                    try await access.rows("COMMIT")
                    return result
                } catch {
                    // On a closed connection there is nothing to roll back, and the query
                    // would never complete (see `PostgresConnection.checkOpen`).
                    if !connection.isClosed {
                        do {
                            // After a failed COMMIT the transaction is already over; this is then a no-op.
                            _ = try await pools.watchdog.watch(connection) { try await connection.query("ROLLBACK", logger: logger) }
                        } catch {
                            logger.warning("ROLLBACK failed; closing the connection", metadata: ["error": "\(PostgresErrors.translate(error))"])
                            try? await connection.close()
                        }
                    }
                    throw error
                }
            }
        }
    }

    // MARK: Notifications

    /// The channel for ephemeral signals between nodes (typing, presence, heartbeats).
    package static let signalChannel = "vestnik_signals"

    /// Sends an ephemeral signal to every node listening (``listenForSignals(onListening:_:)``).
    /// Not durable: a node that is not listening right now never sees it. Payloads are limited
    /// by PostgreSQL to 8,000 bytes.
    ///
    /// Returns once the statement ran; its implicit transaction, and so the delivery, commits a
    /// moment later at the protocol's sync. Heartbeats, which rely on one sent before the next is
    /// numbered, are at least 0.1 s apart, and numbered so that one committed late is only taken
    /// as a sign of life (``ClusterPresence``).
    package func notify(signal payload: String) async throws {
        try await pools.withConnection { connection in
            try connection.checkOpen()
            _ = try await pools.watchdog.watch(connection) {
                try await connection.query("SELECT pg_notify(\(Self.signalChannel), \(payload))", logger: logger)
            }
        }
    }

    /// Holds one pooled connection listening on ``signalChannel`` and hands every payload to
    /// `onSignal`. Returns on cancellation; throws when the connection drops.
    package func listenForSignals(
        onListening: @Sendable () async -> Void = {},
        _ onSignal: @Sendable @escaping (String) async -> Void
    ) async throws {
        do {
            try await pools.withConnection(counted: false) { connection in
                try connection.checkOpen()
                try await connection.listen(on: Self.signalChannel) { notifications in
                    await onListening()
                    for try await notification in notifications {
                        await onSignal(notification.payload)
                    }
                }
            }
        } catch {
            if Task.isCancelled { return }
            throw error
        }
        if Task.isCancelled { return }
        throw pools.translate(StoreError.unavailable("the PostgreSQL signal connection closed"))
    }

    /// Holds one pooled connection listening on ``eventChannel`` and calls `onNotify` with each
    /// log position announced by another store instance (another node or process), in the order
    /// PostgreSQL delivers them (commit order). This store's own commits are not announced to it:
    /// the process that made them publishes them in memory.
    ///
    /// Notifications carry positions only and are a latency hint: the log stays the source of
    /// truth. A notification can be missed (while reconnecting, or before `LISTEN` took effect),
    /// so after `onListening` the caller should read the head (``headSeq()``) and fill any gap
    /// with ``committedEvents(after:through:limit:)``, and keep its periodic head poll as a
    /// safety net (a silently dead TCP connection is noticed only by that poll, since a leased
    /// connection gets no keep-alive queries).
    ///
    /// Returns when the task is cancelled; throws when the connection drops or `LISTEN` fails,
    /// so the caller can loop with a backoff. Run one listener per process and fan out in memory.
    /// - Parameters:
    ///   - onListening: called once `LISTEN` is in effect.
    ///   - onNotify: called per notification, awaited before the next one is read.
    package func listenForEvents(
        onListening: @Sendable () async -> Void = {},
        _ onNotify: @Sendable @escaping (EventSeq) async -> Void
    ) async throws {
        do {
            try await pools.withConnection(counted: false) { connection in
                try connection.checkOpen()
                try await connection.listen(on: Self.eventChannel) { notifications in
                    await onListening()
                    for try await notification in notifications {
                        // "<seq> <origin>"; a bare "<seq>" from a node that does not tag is taken too.
                        let parts = notification.payload.split(separator: " ", maxSplits: 1)
                        guard let first = parts.first, let value = Int64(first) else {
                            logger.warning("ignoring a malformed event notification", metadata: ["payload": "\(notification.payload.prefix(64))"])
                            continue
                        }
                        if parts.count == 2, parts[1] == origin { continue }
                        await onNotify(EventSeq(value))
                    }
                }
            }
        } catch {
            if Task.isCancelled { return }
            throw error
        }
        if Task.isCancelled { return }
        throw pools.translate(StoreError.unavailable("the PostgreSQL notification connection closed"))
    }
}

/// Whether the store still takes requests, and how many it is serving.
///
/// Closed when the store stops: from then on requests fail at once instead of queueing for a
/// connection that will never come, and the store waits for the ones in flight before it stops
/// the pools (see ``PostgresStore/run()``). Long-lived listeners are not counted: they end with
/// their own task.
final class PoolGate: Sendable {
    private struct State {
        var closed = false
        var inFlight = 0
        /// The store's shutdown, waiting for the last request in flight.
        var drainWaiter: CheckedContinuation<Void, Never>?
        /// Ends that wait after the drain's time bound; cancelled when the drain ends first.
        var drainTimer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    /// Fails once the gate is closed.
    func check() throws {
        if state.withLock({ $0.closed }) { throw Self.stopped }
    }

    /// Counts a request in; fails once the gate is closed. Pair with ``leave()``.
    func enter() throws {
        try state.withLock { state in
            if state.closed { throw Self.stopped }
            state.inFlight += 1
        }
    }

    func leave() {
        let last = state.withLock { state -> Bool in
            state.inFlight -= 1
            return state.closed && state.inFlight == 0
        }
        if last { takeDrainWaiter()?.resume() }
    }

    /// The drain's waiter, once: whoever takes it resumes it (the last request or the timer).
    private func takeDrainWaiter() -> CheckedContinuation<Void, Never>? {
        let (waiter, timer) = state.withLock { state in
            defer {
                state.drainWaiter = nil
                state.drainTimer = nil
            }
            return (state.drainWaiter, state.drainTimer)
        }
        timer?.cancel()
        return waiter
    }

    /// Refuses new requests, then returns once none is in flight, or after `timeout`. Called once
    /// per ``PostgresPools/Generation``, whose pools then stop (`PostgresClient.run()` may run
    /// only once).
    func closeAndDrain(atMost timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let drained = state.withLock { state -> Bool in
                state.closed = true
                if state.inFlight == 0 { return true }
                state.drainWaiter = continuation
                // The bound runs in a task of its own: the caller is often cancelled (a cancelled
                // server still lets its requests finish), and a cancelled task cannot sleep.
                // Created under the lock, so it cannot look for the waiter before it is stored.
                state.drainTimer = Task.detached {
                    try? await Task.sleep(for: timeout)
                    self.takeDrainWaiter()?.resume()
                }
                return false
            }
            if drained { continuation.resume() }
        }
    }

    static var stopped: StoreError { StoreError.backend("the database connection pool has stopped") }
}

extension PostgresConnection {
    /// Fails on a closed connection. A query written to a closed connection is dropped without
    /// failing its promise (PostgresNIO 1.33), so its caller would wait forever; checking first
    /// leaves only the moment between this check and the write.
    func checkOpen() throws {
        if isClosed { throw StoreError.unavailable("the database connection is closed") }
    }
}
