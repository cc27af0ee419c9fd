import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import VestnikCore

/// The store's connection pools, and what replaces them when the server was gone (decision 0014).
///
/// Why not PostgresNIO's pool alone: while it cannot connect it queues every request until its
/// circuit breaker trips after 60 s, and once the server is back it reconnects only when its
/// backoff timer fires, up to 60 s later; neither is configurable. Here a connection-level
/// failure makes the store probe the server with a connection of its own. If that fails, the
/// pools are retired (requests waiting in them fail as they stop) and new requests fail at once as
/// ``StoreError/unavailable(_:)``; the probe retries every ``probeInterval``, and when it connects
/// the store starts fresh pools, whose first lease connects at once.
final class PostgresPools: Sendable {
    /// One pair of pools: the shared one and the single writer's, with the gate counting their requests.
    private final class Generation: Sendable {
        let client: PostgresClient
        let writer: PostgresClient
        let gate = PoolGate()
        /// Open once each pool's `run()` is being called. A lease waits for it: PostgresNIO
        /// would queue an earlier one too, but logs a warning for it, which every start of a
        /// server printed (its schema migration races the store's service starting).
        let writerRunning = ReadinessLatch()
        let clientRunning = ReadinessLatch()
        private let running = Mutex<Task<Void, Never>?>(nil)

        init(configuration: PostgresStoreConfiguration, writerLoopGroup: any EventLoopGroup, logger: Logger) {
            client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
            writer = PostgresClient(configuration: configuration.writerClientConfiguration, eventLoopGroup: writerLoopGroup, backgroundLogger: logger)
        }

        /// Runs both pools until ``retire(drainTimeout:)``. Detached, so that neither the caller's
        /// cancellation nor a graceful shutdown (a task local) reaches them before their gate drained.
        fileprivate func start() {
            running.withLock { running in
                guard running == nil else { return }
                running = Task.detached { [client, writer, writerRunning, clientRunning] in
                    await withDiscardingTaskGroup { group in
                        // Opened just before the call, whose first step marks the pool running;
                        // a lease slipping between the two still works (it is queued), it only
                        // logs PostgresNIO's warning.
                        group.addTask {
                            writerRunning.open()
                            await writer.run()
                        }
                        group.addTask {
                            clientRunning.open()
                            await client.run()
                        }
                    }
                }
            }
        }

        /// Refuses new requests, lets those in flight finish (for up to `drainTimeout`), then stops
        /// the pools. The order matters: a stopping PostgresNIO pool closes its connections under
        /// the requests still using them, and a query written to a closed connection never
        /// completes (see ``PostgresConnection/checkOpen()``). Requests still waiting for a
        /// connection when the pools stop fail.
        fileprivate func retire(drainTimeout: Duration) async {
            await gate.closeAndDrain(atMost: drainTimeout)
            // Pools that never ran still hold their waiting requests: run them to fail them.
            start()
            let task = running.withLock { $0 }
            task?.cancel()
            await task?.value
        }
    }

    private struct State {
        /// Nil while the server is known to be unreachable: requests then fail at once.
        var current: Generation?
        var stopping = false
        var probe: Task<Void, Never>?
        /// Generations being retired, by number; the store's stop waits for them.
        var retiring: [Int: Task<Void, Never>] = [:]
        var retirements = 0
        /// Ends statements the server does not answer (``AnswerWatchdog``).
        var sweeper: Task<Void, Never>?
    }

    /// How often an unreachable server is tried again, which bounds how long after its return the
    /// store stays unavailable.
    static let probeInterval = Duration.milliseconds(250)
    /// How long one probe may take to connect, and then to answer `SELECT 1`: a server that does
    /// not answer within it counts as unreachable.
    static let probeConnectTimeout = TimeAmount.seconds(2)
    static let probeQueryTimeout = Duration.seconds(2)

    private let state: Mutex<State>
    private let configuration: PostgresStoreConfiguration
    private let writerLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let drainTimeout: Duration
    private let probeIDs = Atomic<Int>(0)
    /// Every statement and every wait for a connection, while it runs.
    let watchdog: AnswerWatchdog

    init(configuration: PostgresStoreConfiguration, writerLoopGroup: any EventLoopGroup, logger: Logger, drainTimeout: Duration) {
        self.configuration = configuration
        self.writerLoopGroup = writerLoopGroup
        self.logger = logger
        self.drainTimeout = drainTimeout
        watchdog = AnswerWatchdog(timeout: configuration.answerTimeout)
        state = Mutex(State(current: Generation(configuration: configuration, writerLoopGroup: writerLoopGroup, logger: logger)))
    }

    /// Starts the first pools (the store's `run()`); requests made earlier wait for it.
    func start() {
        state.withLock { state in
            guard !state.stopping else { return }
            state.current?.start()
            if state.sweeper == nil {
                state.sweeper = Task.detached { await self.sweepOverdueWaits() }
            }
        }
    }

    /// Closes what the server leaves unanswered (see ``AnswerWatchdog``) until the store stops;
    /// anything overdue makes the store probe the server.
    private func sweepOverdueWaits() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: watchdog.sweepInterval)
            let overdue = watchdog.closeOverdue(logger: logger)
            if overdue.statements + overdue.leases > 0 { checkServer() }
        }
    }

    /// Which of a generation's pools a request uses.
    enum Pool {
        case shared, writer
    }

    /// The current pools, counted in their gate when `counted` (pair with `gate.leave()`); throws
    /// at once while the server is known unreachable, or once the store stops.
    private func live(counted: Bool) throws -> Generation {
        try state.withLock { state in
            guard !state.stopping else { throw PoolGate.stopped }
            guard let current = state.current else { throw Self.unreachable }
            if counted { try current.gate.enter() } else { try current.gate.check() }
            return current
        }
    }

    static var unreachable: StoreError { .unavailable("the PostgreSQL server is not reachable; waiting for it to come back") }

    /// Translates a failed request's error; a connection-level failure (``StoreError/unavailable(_:)``)
    /// makes the store check the server.
    func translate(_ error: any Error) -> any Error {
        let translated = PostgresErrors.translate(error)
        if case StoreError.unavailable = translated { checkServer() }
        return translated
    }

    /// Runs `body` on a connection leased from the current pools and translates what it throws.
    /// A lease that fails (pools stopping, a server that stayed unreachable) is the database
    /// being unavailable, whatever error the pool reports.
    /// - Parameter counted: false for a long-lived listener, which the retiring pools' drain
    ///   does not wait for: it ends with its own task, or when its connection closes.
    func withConnection<T>(_ pool: Pool = .shared, counted: Bool = true, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let generation = try live(counted: counted)
        defer { if counted { generation.gate.leave() } }
        let client = pool == .writer ? generation.writer : generation.client
        await (pool == .writer ? generation.writerRunning : generation.clientRunning).wait()
        var leased = false
        let leaseWait = counted ? watchdog.begin(nil) : nil
        do {
            return try await client.withConnection { connection in
                if let leaseWait { watchdog.end(leaseWait) }
                leased = true
                return try await body(connection)
            }
        } catch {
            if !leased, let leaseWait { watchdog.end(leaseWait) }
            if !leased, !(error is CancellationError), !(error is PSQLError), !(error is StoreError) {
                // A cancelled caller's lease fails with the pool's own error: not an outage.
                if Task.isCancelled { throw CancellationError() }
                throw translate(StoreError.unavailable("no PostgreSQL connection: \(error)"))
            }
            throw translate(error)
        }
    }

    /// Probes the server unless a probe already runs (see the type's documentation).
    func checkServer() {
        state.withLock { state in
            guard !state.stopping, state.probe == nil else { return }
            state.probe = Task.detached { await self.probeUntilReachable() }
        }
    }

    private func probeUntilReachable() async {
        while !Task.isCancelled {
            let outcome = await probe()
            guard case .unreachable(let reason) = outcome else {
                let restarted = state.withLock { state -> Bool in
                    state.probe = nil
                    guard !state.stopping, state.current == nil else { return false }
                    let fresh = Generation(configuration: configuration, writerLoopGroup: writerLoopGroup, logger: logger)
                    // Started under the lock, so a concurrent stop either sees it and retires it
                    // or comes first and this never starts.
                    fresh.start()
                    state.current = fresh
                    return true
                }
                if restarted { logger.notice("the PostgreSQL server is reachable again; requests are served") }
                return
            }
            let retired = state.withLock { state -> Bool in
                guard !state.stopping, let current = state.current else { return false }
                state.current = nil
                state.retirements += 1
                let number = state.retirements
                let drainTimeout = drainTimeout
                state.retiring[number] = Task.detached {
                    await current.retire(drainTimeout: drainTimeout)
                    self.state.withLock { _ = $0.retiring.removeValue(forKey: number) }
                }
                return true
            }
            if retired {
                logger.error(
                    "the PostgreSQL server is not reachable; requests fail with 503 until it is back",
                    metadata: ["vestnik.error": "\(reason)"])
            }
            try? await Task.sleep(for: Self.probeInterval)
        }
        state.withLock { $0.probe = nil }
    }

    private enum ProbeOutcome: Sendable {
        case reachable
        case unreachable(String)
    }

    /// Opens a connection of its own and asks `SELECT 1`, each bounded in time.
    private func probe() async -> ProbeOutcome {
        var connectionConfiguration = configuration.connectionConfiguration
        connectionConfiguration.options.connectTimeout = Self.probeConnectTimeout
        let quiet = Logger(label: logger.label, factory: { _ in SwiftLogNoOpLogHandler() })
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                on: writerLoopGroup.next(), configuration: connectionConfiguration, id: probeIDs.add(1, ordering: .relaxed).newValue, logger: quiet)
        } catch {
            return Self.outcome(of: error)
        }
        // A query in flight fails once its connection closes, which is what ends it on a timeout
        // or when the store stops (it does not end on cancellation by itself).
        let outcome = await withTaskCancellationHandler {
            await withTaskGroup(of: ProbeOutcome?.self) { group in
                group.addTask {
                    do {
                        _ = try await connection.query("SELECT 1", logger: quiet).collect()
                        return .reachable
                    } catch {
                        return Self.outcome(of: error)
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: Self.probeQueryTimeout)
                    return Task.isCancelled ? nil : .unreachable("no answer to SELECT 1 within \(Self.probeQueryTimeout)")
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                connection.close().whenComplete { _ in }
                return first ?? .unreachable("the probe was cancelled")
            }
        } onCancel: {
            connection.close().whenComplete { _ in }
        }
        // Closed before it is released: PostgresNIO insists.
        try? await connection.close()
        return outcome
    }

    /// A server that answered with an error about this client (its credentials, its connection
    /// limit) is there: that is no outage, and replacing the pools would not help.
    private static func outcome(of error: any Error) -> ProbeOutcome {
        let translated = PostgresErrors.translate(error)
        if case StoreError.unavailable = translated { return .unreachable("\(translated)") }
        if let error = error as? PSQLError, error.code == .server { return .reachable }
        return .unreachable("\(translated)")
    }

    /// Stops for good: refuses new requests, ends the probe, and retires every generation (see
    /// ``Generation/retire(drainTimeout:)``).
    func stop() async {
        let (current, probe, sweeper) = state.withLock { state in
            state.stopping = true
            defer {
                state.current = nil
                state.probe = nil
                state.sweeper = nil
            }
            return (state.current, state.probe, state.sweeper)
        }
        probe?.cancel()
        await probe?.value
        await current?.retire(drainTimeout: drainTimeout)
        for task in state.withLock({ Array($0.retiring.values) }) { await task.value }
        // Last: it still cuts statements left unanswered while the requests in flight drain.
        sweeper?.cancel()
        await sweeper?.value
    }
}
