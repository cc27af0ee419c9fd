import Foundation
import Logging
import ServiceLifecycle
import VestnikCore

/// Picks up events that other processes (the admin CLI, later other nodes) appended to the log,
/// and closes every stream on shutdown.
struct FanOutService: Service {
    let hub: EventHub
    let interval: Duration

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
            await hub.catchUp()
        }
        // Registered after the HTTP server, so this runs first on shutdown: open streams end
        // with "going away" and clients reconnect elsewhere instead of holding the server up.
        await hub.shutdown()
    }
}

/// Hourly housekeeping: prunes the event log and deletes expired sessions.
struct RetentionService: Service {
    let services: Services
    let retention: TimeInterval
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                let events = try await services.sync.prune(olderThan: retention)
                let sessions = try await services.sessions.deleteExpired()
                if events > 0 || sessions > 0 {
                    logger.info("housekeeping", metadata: ["vestnik.events.pruned": "\(events)", "vestnik.sessions.expired": "\(sessions)"])
                }
            } catch {
                logger.warning("housekeeping failed", metadata: ["vestnik.error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
            } catch {
                return
            }
        }
    }
}
