import Foundation
import Logging
import VestnikModel

/// What every service shares: the store, the fan-out hub, limits and the logger.
package struct CoreContext: Sendable {
    package var store: any Store
    package var hub: EventHub
    package var limits: CoreLimits
    package var logger: Logger
    /// Other nodes, for typing and presence; nil on a single node.
    package var relay: (any EphemeralRelay)?

    package init(store: any Store, hub: EventHub, limits: CoreLimits = CoreLimits(), logger: Logger, relay: (any EphemeralRelay)? = nil) {
        self.store = store
        self.hub = hub
        self.limits = limits
        self.logger = logger
        self.relay = relay
    }

    /// Runs a write transaction, then publishes the events it appended to live subscribers.
    ///
    /// Publishing happens strictly after commit, so a subscriber never sees an event that could
    /// still roll back.
    package func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter, EventLog) async throws -> T) async throws -> T {
        let log = EventLog()
        let result: T
        do {
            result = try await store.write { tx in try await body(tx, log) }
        } catch StoreError.duplicate(let what) {
            // A uniqueness race the service's own checks did not catch: a conflict, not a crash.
            throw VestnikError(.conflict, "The request conflicts with a concurrent change; retry.", cause: StoreError.duplicate(what: what))
        } catch let error as StoreError {
            throw VestnikError(.internalError, "The request could not be stored.", cause: error)
        }
        let events = log.drain()
        if !events.isEmpty { await hub.publish(events) }
        return result
    }

    /// Runs a read transaction, mapping store failures to internal errors.
    package func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T {
        do {
            return try await store.read(body)
        } catch let error as StoreError {
            throw VestnikError(.internalError, "The data could not be read.", cause: error)
        }
    }
}

/// Input limits enforced by Core (the HTTP layer additionally caps body sizes).
package struct CoreLimits: Sendable {
    package var maxMessageBytes = 16 * 1024
    package var maxTitleLength = 128
    package var maxDescriptionLength = 2048
    package var maxClientMessageIDLength = 128
    package var maxMembersPerRequest = 1000
    package var maxPageSize = 200
    package var maxEmojiBytes = 64
    package var maxDeviceNameLength = 128
    package var maxSearchLength = 128
    package var sessionLifetime: TimeInterval = 30 * 24 * 3600
    package init() {}
}

/// Collects the events a write transaction appends, so ``CoreContext/write(_:)`` can publish
/// them after commit.
package final class EventLog: Sendable {
    private let collected = Synchronization.Mutex<[CommittedEvent]>([])

    /// Appends `event` for `recipients` inside the transaction `tx`.
    @discardableResult
    package func append(_ event: ServerEvent, to recipients: [UserID], in tx: any StoreWriter) async throws -> EventSeq {
        let payload = try VestnikJSON.encode(event)
        let unique = Array(Set(recipients))
        let seq = try await tx.appendEvent(event, payload: payload, recipients: unique, at: Date.millisecondNow())
        collected.withLock { $0.append(CommittedEvent(seq: seq, event: event, recipients: unique, payload: payload)) }
        return seq
    }

    fileprivate func drain() -> [CommittedEvent] {
        collected.withLock { events in
            defer { events.removeAll() }
            return events
        }
    }
}

import Synchronization
