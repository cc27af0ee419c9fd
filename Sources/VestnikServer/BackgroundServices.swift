import Foundation
import Logging
import ServiceLifecycle
import VestnikCore
import VestnikModel

/// Keeps the hub complete: picks up events that other processes (the admin CLI, other nodes)
/// appended to the log, and closes every stream on shutdown.
///
/// Two triggers, one action (`EventHub.catchUp`, which reads the log from the hub's position):
/// a timer (the safety net; also the only trigger on SQLite), and, where the store has one, a
/// notification channel (PostgreSQL `LISTEN`) carrying positions only. A lost notification costs
/// latency until the next tick, never an event. Notifications are coalesced: a burst of them
/// causes one catch-up.
struct FanOutService: Service {
    let hub: EventHub
    let interval: Duration
    let listen: (@Sendable (_ onListening: @Sendable @escaping () async -> Void, _ onNotify: @Sendable @escaping (EventSeq) async -> Void) async throws -> Void)?
    let logger: Logger

    func run() async throws {
        let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The timer.
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    do {
                        try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                    } catch {
                        break
                    }
                    wake.yield()
                }
                wake.finish()
            }
            if let listen {
                group.addTask {
                    // The notification listener, reconnecting with backoff.
                    var delay = Duration.milliseconds(100)
                    while !Task.isShuttingDownGracefully, !Task.isCancelled {
                        do {
                            try await cancelWhenGracefulShutdown {
                                try await listen({ wake.yield() }) { announced in
                                    // This node's own commits are published in process; their
                                    // notifications need no read of the log.
                                    if await hub.position < announced { wake.yield() }
                                }
                            }
                        } catch {
                            if Task.isShuttingDownGracefully || Task.isCancelled { break }
                            logger.backgroundFailure("event notifications interrupted; retrying", error)
                        }
                        let pause = delay
                        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                        delay = min(delay * 2, .seconds(5))
                    }
                }
            }
            for await _ in wakeups {
                await hub.catchUp()
            }
            group.cancelAll()
        }
        // Registered after the HTTP server, so this runs first on shutdown: open streams end
        // with "going away" and clients reconnect elsewhere instead of holding the server up.
        await hub.shutdown()
    }
}

/// Hourly housekeeping: prunes the event log, deletes expired sessions and spent login counts.
struct RetentionService: Service {
    let services: Services
    let retention: TimeInterval
    let logger: Logger

    func run() async throws {
        // The first round waits until the store is migrated, and then a minute more: start-up
        // has enough to do.
        await cancelWhenGracefulShutdown { await services.context.storeReady.wait() }
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        } catch {
            return
        }
        while !Task.isShuttingDownGracefully {
            do {
                let events = try await services.sync.prune(olderThan: retention)
                let sessions = try await services.sessions.deleteExpired()
                if events > 0 || sessions > 0 {
                    logger.info("housekeeping", metadata: ["vestnik.events.pruned": "\(events)", "vestnik.sessions.expired": "\(sessions)"])
                }
            } catch {
                logger.backgroundFailure("housekeeping failed", error)
            }
            // Apart: a failure above must not leave the login counts growing.
            do {
                let attempts = try await services.sessions.pruneLoginAttempts()
                if attempts > 0 { logger.info("housekeeping", metadata: ["vestnik.login_attempts.pruned": "\(attempts)"]) }
            } catch {
                logger.backgroundFailure("pruning login counts failed", error)
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
            } catch {
                return
            }
        }
    }
}

/// Typing and presence between nodes: listens for other nodes' signals (asking each for its
/// roster whenever listening starts), and announces this node every `heartbeat` (5 s) so that
/// the others forget it three heartbeats after it dies (its users then count as offline).
struct RelayService: Service {
    let relay: ClusterRelay
    let services: Services
    let heartbeat: Duration
    let logger: Logger

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var delay = Duration.milliseconds(100)
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    do {
                        try await cancelWhenGracefulShutdown {
                            try await relay.listen(onListening: { await services.sync.requestRosters() }) { envelope in
                                await services.sync.receive(envelope)
                            }
                        }
                    } catch {
                        if Task.isShuttingDownGracefully || Task.isCancelled { break }
                        logger.backgroundFailure("cluster signals interrupted; retrying", error)
                    }
                    let pause = delay
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                    delay = min(delay * 2, .seconds(5))
                }
            }
            group.addTask {
                // On fixed deadlines: a send that waits for the pool must not stretch the
                // interval the other nodes hold this node to.
                var deadline = ContinuousClock.now
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    deadline += heartbeat
                    await services.sync.heartbeat(every: heartbeat)
                    deadline = max(deadline, .now)
                    let next = deadline
                    do {
                        try await cancelWhenGracefulShutdown { try await Task.sleep(until: next, clock: .continuous) }
                    } catch {
                        break
                    }
                }
            }
            await group.waitForAll()
        }
    }
}

/// Deletes stealth messages whose lifetime ended (BotX `stealth_set` `burn_in`/`expire_in`),
/// once a second; a cheap indexed read when nothing is due.
struct StealthExpiryService: Service {
    let services: Services
    let logger: Logger

    func run() async throws {
        // The tables may not exist before this node's migration ran.
        await cancelWhenGracefulShutdown { await services.context.storeReady.wait() }
        // Cancellation is checked too: on PostgreSQL a query issued after the connection pool
        // stopped would wait forever.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await services.bots.expireStealthMessages()
            } catch {
                logger.backgroundFailure("stealth expiry failed", error)
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
    }
}
