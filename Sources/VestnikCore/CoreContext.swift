import Foundation
import Logging
import Synchronization
import VestnikModel

/// What every service shares: the store, the fan-out hub, limits and the logger.
package struct CoreContext: Sendable {
    package var store: any Store
    package var hub: EventHub
    package var limits: CoreLimits
    package var logger: Logger
    /// Other nodes, for typing and presence; nil on a single node.
    package var relay: (any EphemeralRelay)?
    /// Poked after a commit that queued bot deliveries, so they go out at once.
    package let botOutbox: BotOutboxSignal
    /// Opened once the store is migrated and the hub started: background services wait for it,
    /// rather than polling tables a starting node's migration has not created yet.
    package let storeReady = ReadinessLatch()

    package init(
        store: any Store, hub: EventHub, limits: CoreLimits = CoreLimits(), logger: Logger, relay: (any EphemeralRelay)? = nil,
        botOutbox: BotOutboxSignal = BotOutboxSignal()
    ) {
        self.botOutbox = botOutbox
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
    /// - Parameter intent: announced to the store (see ``WriteIntent``).
    package func write<T: Sendable>(
        intent: WriteIntent? = nil, _ body: @escaping @Sendable (any StoreWriter, EventLog) async throws -> T
    ) async throws -> T {
        let log = EventLog(maxQueuedBotJobs: limits.maxQueuedBotJobs)
        let result: T
        do {
            result = try await store.write(intent: intent) { tx in
                // A body may run again (``GroupCommit``): only its last run's events count.
                log.reset()
                return try await body(tx, log)
            }
        } catch StoreError.duplicate(let what) {
            // A uniqueness race the service's own checks did not catch: a conflict, not a crash.
            throw VestnikError(.conflict, "The request conflicts with a concurrent change; retry.", cause: StoreError.duplicate(what: what))
        } catch let error as StoreError {
            throw error.mapped("The request could not be stored.")
        }
        let events = log.drain()
        if !events.isEmpty { await hub.publish(events) }
        if log.queuedBotJobs { botOutbox.poke() }
        for bot in log.droppedBotJobs {
            logger.warning("bot delivery dropped: the bot's queue is full", metadata: ["vestnik.bot.id": "\(bot)"])
        }
        return result
    }

    /// Runs a read transaction, mapping store failures to internal errors.
    package func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T {
        try await storeCall { try await $0.read(body) }
    }

    /// Runs one read the store answers by itself (such as
    /// ``Store/authenticationRecord(tokenHash:)``), mapping store failures like ``read(_:)``.
    package func storeCall<T: Sendable>(_ call: (any Store) async throws -> T) async throws -> T {
        do {
            return try await call(store)
        } catch let error as StoreError {
            throw error.mapped("The data could not be read.")
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
    /// Decoded bytes of all inline files of one bot message.
    package var maxInlineFileBytes = 1024 * 1024
    package var maxBotURLLength = 2048
    /// Encoded bytes of a bot message's `metadata`, `bubble` and `keyboard` together: they are
    /// stored with the message and sent back with every button press.
    package var maxBotExtrasBytes = 64 * 1024
    /// Deliveries queued for one bot; beyond it new ones are dropped (and logged) rather than
    /// filling the database while a bot is down for a day.
    package var maxQueuedBotJobs = 10_000
    package init() {}
}

/// Collects the events a write transaction appends, so ``CoreContext/write(_:)`` can publish
/// them after commit.
package final class EventLog: Sendable {
    private let collected = Synchronization.Mutex<[CommittedEvent]>([])
    private let maxQueuedBotJobs: Int

    package init(maxQueuedBotJobs: Int = .max) { self.maxQueuedBotJobs = maxQueuedBotJobs }

    /// Appends `event` for `recipients` inside the transaction `tx`.
    @discardableResult
    package func append(_ event: ServerEvent, to recipients: [UserID], in tx: any StoreWriter) async throws -> EventSeq {
        try await append(event, to: recipients) { entry in
            try await tx.appendEvent(entry.event, payload: entry.payload, audience: entry.audience, at: entry.at)
        }
    }

    /// Appends `event` for `recipients` through `store`, which writes the entry (together with
    /// other changes, if it likes) and returns its position.
    @discardableResult
    package func append(
        _ event: ServerEvent, to recipients: [UserID], storing store: (LogEntry) async throws -> EventSeq
    ) async throws -> EventSeq {
        let entry = LogEntry(event: event, payload: try VestnikJSON.encode(event), audience: EventAudience(recipients), at: Date.millisecondNow())
        let seq = try await store(entry)
        collected.withLock { $0.append(CommittedEvent(seq: seq, event: event, recipients: entry.audience.members, payload: entry.payload)) }
        return seq
    }

    /// Queues a delivery to a bot inside the transaction `tx`; the outbox is woken after commit.
    /// A bot with a full queue (``CoreLimits/maxQueuedBotJobs``) gets nothing new: the change
    /// itself still commits (a user's send never fails because a bot is down), the drop is logged.
    package func enqueue(_ job: BotJob, for bot: UserID, in tx: any StoreWriter) async throws {
        guard try await tx.pendingBotJobs(of: bot) < maxQueuedBotJobs else {
            _ = dropped.withLock { $0.insert(bot) }
            return
        }
        let now = Date.millisecondNow()
        try await tx.enqueueBotJob(BotJobRecord(id: UUID(), botID: bot, job: job, attempts: 0, nextAttemptAt: now, createdAt: now))
        botJobs.withLock { $0 = true }
    }

    private let botJobs = Synchronization.Mutex(false)
    private let dropped = Synchronization.Mutex(Set<UserID>())
    fileprivate var queuedBotJobs: Bool { botJobs.withLock { $0 } }
    fileprivate var droppedBotJobs: Set<UserID> { dropped.withLock { $0 } }

    /// Forgets everything collected: the transaction is being run again from its start.
    fileprivate func reset() {
        collected.withLock { $0.removeAll() }
        botJobs.withLock { $0 = false }
        dropped.withLock { $0.removeAll() }
    }

    fileprivate func drain() -> [CommittedEvent] {
        collected.withLock { events in
            defer { events.removeAll() }
            return events
        }
    }
}

/// Wakes the bot delivery service when jobs were queued (or a delivery finished) in this process.
///
/// A flag rather than a queue: a burst of commits causes one claim round, which takes every due
/// job anyway. The delivery service sleeps in ``wait(atMost:)`` until it is poked or its slower
/// poll for other writers is due, so an idle server does not wake up every few milliseconds.
package final class BotOutboxSignal: Sendable {
    private let flag = WaitableFlag()

    package init() {}

    package func poke() { flag.set() }

    /// Whether a poke came since the last call; clears it.
    package func take() -> Bool { flag.take() }

    /// Returns once a poke is pending (at once if one already is), after `timeout`, or when the
    /// task is cancelled; leaves the poke pending for ``take()``.
    package func wait(atMost timeout: Duration) async { await flag.wait(atMost: timeout) }
}

/// A one-way gate: ``wait()`` returns once ``open()`` was called (or the waiting task is cancelled).
package final class ReadinessLatch: Sendable {
    private let flag = WaitableFlag()

    package init() {}

    package var isOpen: Bool { flag.isSet }

    package func open() { flag.set() }

    package func wait() async { await flag.wait() }
}
