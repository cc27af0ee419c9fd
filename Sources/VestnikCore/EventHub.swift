import Foundation
import Logging
import Synchronization
import VestnikModel

/// In-process fan-out of committed events to live subscribers, strictly in log order.
///
/// Writers publish after commit, but two transactions may finish publishing in the opposite
/// order of their positions, and other processes (the admin CLI, later other nodes) write to the
/// log without publishing here at all. So the hub never trusts the order of `publish` calls: it
/// delivers position `n` only after `n-1`, and when it sees a gap it reads the missing range from
/// the store (which is complete, because a position is only visible after every earlier one
/// committed). ``catchUp()`` does the same on a timer to pick up foreign writes.
/// Where a live subscription's deliveries go once the transport has caught its subscriber up:
/// straight to the connection, without waking a task per delivery (decision 0006).
///
/// The hub calls it in position order with the subscription's lock held, so an implementation
/// must only hand the work over (e.g. queue it for the connection's event loop), never block
/// or call back into the subscription.
package protocol LiveDeliverySink: Sendable {
    /// Takes one delivery; false when the connection cannot keep up. For a durable delivery the
    /// subscription then ends as `slow_consumer`; an ephemeral one is simply lost.
    func deliver(_ delivery: EventHub.Delivery) -> Bool
    /// The subscription ended: `reason` as in ``EventHub/Subscription/closeReason`` (nil: the
    /// subscriber itself went away). The sink tells the client and closes the connection.
    func close(reason: String?)
}

package actor EventHub {
    /// What a subscriber receives.
    package enum Delivery: Sendable {
        case durable(seq: EventSeq, event: ServerEvent, payload: Data)
        case ephemeral(event: ServerEvent, payload: Data)
    }

    /// A live subscription. Deliveries queue in a bounded mailbox that the consumer empties a
    /// batch at a time (``nextBatch()``): one wake-up of the consumer then carries every delivery
    /// that arrived meanwhile, so under load a connection writes several events with one flush
    /// instead of one task switch and one system call per event. When the hub closes the
    /// subscription the consumer still receives what was queued, then an empty batch;
    /// ``closeReason`` then says why (nil when the subscriber itself went away).
    package final class Subscription: Sendable {
        package let id: Int
        package let userID: UserID
        package let sessionID: SessionID?
        /// Every durable event after this position will be delivered here; everything up to it
        /// is in the store.
        package let deliveredFrom: EventSeq
        /// Deliveries a subscriber may have queued before it counts as too slow.
        package let bufferLimit: Int
        private let mailbox = Mutex(Mailbox())

        private struct Mailbox {
            var queued: [Delivery] = []
            var waiter: CheckedContinuation<[Delivery], Never>?
            var finished = false
            var reason: String?
            /// Set by ``goLive(_:)``: deliveries bypass the queue.
            var sink: (any LiveDeliverySink)?
        }

        fileprivate init(id: Int, userID: UserID, sessionID: SessionID?, deliveredFrom: EventSeq, bufferLimit: Int) {
            self.id = id
            self.userID = userID
            self.sessionID = sessionID
            self.deliveredFrom = deliveredFrom
            self.bufferLimit = bufferLimit
        }

        /// Why the hub ended the subscription (`slow_consumer`, `shutdown`, …), if it did.
        package var closeReason: String? { mailbox.withLock { $0.reason } }

        /// Every delivery queued since the last call, waiting for at least one; empty once the
        /// subscription has ended and its queue is drained, or when the waiting task is
        /// cancelled. Meant for one consumer at a time.
        package func nextBatch() async -> [Delivery] {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<[Delivery], Never>) in
                    let ready: [Delivery]? = mailbox.withLock { box in
                        if !box.queued.isEmpty {
                            defer { box.queued = [] }
                            return box.queued
                        }
                        if box.finished || Task.isCancelled { return [] }
                        box.waiter = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                let waiter = mailbox.withLock { box in
                    defer { box.waiter = nil }
                    return box.waiter
                }
                waiter?.resume(returning: [])
            }
        }

        /// The deliveries one at a time (tests and simple consumers).
        package var stream: AsyncStream<Delivery> {
            AsyncStream { continuation in
                let task = Task {
                    while true {
                        let batch = await self.nextBatch()
                        if batch.isEmpty { break }
                        for delivery in batch { continuation.yield(delivery) }
                    }
                    continuation.finish()
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }

        /// Switches to live delivery: what is queued goes to `sink` first, then every later
        /// delivery goes straight to it (under the same lock, so nothing can overtake). If the
        /// subscription already ended, the sink is told at once.
        package func goLive(_ sink: any LiveDeliverySink) {
            let ended: (Bool, String?) = mailbox.withLock { box in
                for delivery in box.queued where !box.finished {
                    if !sink.deliver(delivery), case .durable = delivery {
                        box.finished = true
                        if box.reason == nil { box.reason = "slow_consumer" }
                    }
                }
                box.queued = []
                if box.finished { return (true, box.reason) }
                box.sink = sink
                return (false, nil)
            }
            if ended.0 { sink.close(reason: ended.1) }
        }

        fileprivate func close(reason newReason: String?) {
            let (waiter, sink, reason) = mailbox.withLock { box -> (CheckedContinuation<[Delivery], Never>?, (any LiveDeliverySink)?, String?) in
                if box.finished { return (nil, nil, nil) }
                if box.reason == nil { box.reason = newReason }
                box.finished = true
                defer {
                    box.waiter = nil
                    box.sink = nil
                }
                return (box.waiter, box.sink, box.reason)
            }
            waiter?.resume(returning: [])
            sink?.close(reason: reason)
        }

        /// Offers a delivery; false when it was not queued. A full mailbox closes the subscriber
        /// only for durable events (it must resume from the log); ephemeral ones are just
        /// dropped, so a flood of typing notifications can never disconnect anyone.
        fileprivate func offer(_ delivery: Delivery) -> Bool {
            enum Outcome { case queued, full, finished }
            var isDurable = false
            if case .durable = delivery { isDurable = true }
            let limit = bufferLimit
            let (outcome, waiter, closedSink) = mailbox.withLock {
                box -> (Outcome, CheckedContinuation<[Delivery], Never>?, (any LiveDeliverySink)?) in
                if box.finished { return (.finished, nil, nil) }
                if let sink = box.sink {
                    if sink.deliver(delivery) { return (.queued, nil, nil) }
                    guard isDurable else { return (.full, nil, nil) }
                    box.finished = true
                    if box.reason == nil { box.reason = "slow_consumer" }
                    box.sink = nil
                    return (.full, nil, sink)
                }
                guard box.queued.count < limit else {
                    if isDurable {
                        box.finished = true
                        if box.reason == nil { box.reason = "slow_consumer" }
                        defer { box.waiter = nil }
                        return (.full, box.waiter, nil)
                    }
                    return (.full, nil, nil)
                }
                if let waiter = box.waiter {
                    box.waiter = nil
                    return (.queued, waiter, nil)  // handed over directly, nothing stays queued
                }
                box.queued.append(delivery)
                return (.queued, nil, nil)
            }
            closedSink?.close(reason: "slow_consumer")
            switch outcome {
            case .queued:
                waiter?.resume(returning: [delivery])
                return true
            case .full:
                waiter?.resume(returning: [])
                return false
            case .finished:
                return false
            }
        }
    }

    /// A presence transition caused by a subscribe or unsubscribe.
    /// `version` numbers this node's transitions (see ``ClusterPresence``).
    package enum PresenceTransition: Sendable {
        case none
        case cameOnline(version: UInt64)
        case wentOffline(lastSeen: Date, version: UInt64)
    }

    private let store: any Store
    private let logger: Logger
    /// Deliveries a subscriber may have queued before it counts as too slow.
    package nonisolated let bufferLimit: Int
    private var subscribers: [UserID: [Int: Subscription]] = [:]
    private var nextSubscriberID = 0
    private var deliveredUpTo: EventSeq
    /// The first position of a gap the store could not fill yet, and since when.
    private var gapNoticed: (seq: Int64, at: ContinuousClock.Instant)?
    /// How long a gap may stay unfilled before its positions are given up.
    static let maxGapWait = Duration.seconds(5)
    private var pending: [Int64: CommittedEvent] = [:]
    private var draining = false
    private var lastSeen: [UserID: Date] = [:]
    /// Users connected to other nodes.
    private var cluster = ClusterPresence()
    /// The number of this node's latest presence transition (0: none yet).
    private var presenceVersion: UInt64 = 0
    private var lastRosterSent: ContinuousClock.Instant?
    /// When this node sent the newest of its own heartbeats that came back through the database.
    private var lastOwnHeartbeat: ContinuousClock.Instant?
    private var heartbeatsSent: UInt64 = 0
    private var heartbeatSentAt: [UInt64: ContinuousClock.Instant] = [:]
    private var pendingPresenceBroadcasts: Set<UserID> = []
    private var drainingPresenceBroadcasts = false
    private var stopped = false
    private var started: Bool

    /// - Parameters:
    ///   - startingAfter: the store head at start-up (earlier events are history, not live), or
    ///     nil when it is not known yet; then ``start(after:)`` must be called before the hub is used.
    ///   - bufferLimit: deliveries a subscriber may have queued before it counts as too slow.
    package init(store: any Store, startingAfter: EventSeq?, bufferLimit: Int = 8192, logger: Logger) {
        self.store = store
        self.deliveredUpTo = startingAfter ?? .zero
        self.started = startingAfter != nil
        self.bufferLimit = bufferLimit
        self.logger = logger
    }

    /// Sets the live position once the store is reachable (after migrations), before any
    /// request is served.
    package func start(after head: EventSeq) {
        guard !started else { return }
        deliveredUpTo = head
        started = true
    }

    /// The newest position delivered to subscribers.
    package var position: EventSeq { deliveredUpTo }

    /// Registers a live subscriber for `user`. Events after ``Subscription/deliveredFrom`` arrive
    /// on its stream; the caller reads anything older from the store.
    package func subscribe(user: UserID, session: SessionID?) -> (Subscription, PresenceTransition) {
        nextSubscriberID += 1
        let subscription = Subscription(
            id: nextSubscriberID, userID: user, sessionID: session, deliveredFrom: deliveredUpTo, bufferLimit: bufferLimit)
        if stopped {
            subscription.close(reason: "shutdown")
            return (subscription, .none)
        }
        let wasOnline = !(subscribers[user]?.isEmpty ?? true)
        subscribers[user, default: [:]][subscription.id] = subscription
        if wasOnline { return (subscription, .none) }
        presenceVersion += 1
        return (subscription, .cameOnline(version: presenceVersion))
    }

    /// Removes a subscriber (idempotent).
    package func unsubscribe(_ subscription: Subscription) -> PresenceTransition {
        subscription.close(reason: nil)
        guard subscribers[subscription.userID]?.removeValue(forKey: subscription.id) != nil else { return .none }
        if subscribers[subscription.userID]?.isEmpty ?? true {
            subscribers[subscription.userID] = nil
            let now = Date.millisecondNow()
            lastSeen[subscription.userID] = now
            presenceVersion += 1
            return .wentOffline(lastSeen: now, version: presenceVersion)
        }
        return .none
    }

    /// Live presence of a user across the deployment: connected here or to any live node.
    package func presence(of user: UserID) -> Presence {
        let online = isLocallyOnline(user) || cluster.isOnline(user)
        return Presence(userID: user, online: online, lastSeenAt: online ? nil : lastSeen[user])
    }

    private func isLocallyOnline(_ user: UserID) -> Bool { !(subscribers[user]?.isEmpty ?? true) }

    /// The users connected to this node and the version of that set, for another node that asked.
    package func localRoster() -> (version: UInt64, users: [UserID]) {
        (presenceVersion, Array(subscribers.keys))
    }

    /// The roster to send another node that asked, unless one went out within the last second
    /// (a node starting asks every node, and each may ask again on noticing a gap).
    package func rosterForAnswer() -> (version: UInt64, users: [UserID])? {
        let now = ContinuousClock.now
        if let last = lastRosterSent, now - last < .seconds(1) { return nil }
        lastRosterSent = now
        return localRoster()
    }

    /// Whether any stream is connected to this node (nobody to tell of a presence change if not).
    package var hasSubscribers: Bool { !subscribers.isEmpty }

    /// This node's newest presence version, for its heartbeat.
    package var localPresenceVersion: UInt64 { presenceVersion }

    /// Records another node's presence change. Returns the user's presence if their overall state
    /// changed.
    package func setRemotePresence(_ user: UserID, online: Bool, version: UInt64?, node: String) -> Presence? {
        let before = presence(of: user).online
        cluster.apply(user: user, online: online, version: version, node: node, at: .now)
        return overallChange(of: user, before: before)
    }

    /// Notes another node's heartbeat; says whether to ask it for its roster.
    package func heardFrom(node: String, version: UInt64?, interval: Duration?, beat: UInt64? = nil) -> ClusterPresence.Follow {
        cluster.heartbeat(node: node, version: version, interval: interval, beat: beat, at: .now)
    }

    /// Numbers this node's next heartbeat and notes when it is sent; returns the number and this
    /// node's newest presence version, for the heartbeat to carry.
    package func nextHeartbeat() -> (beat: UInt64, presenceVersion: UInt64) {
        heartbeatsSent += 1
        heartbeatSentAt[heartbeatsSent] = .now
        // Kept until echoed; the bound only matters while the listener is down.
        heartbeatSentAt[heartbeatsSent - min(heartbeatsSent, Self.heartbeatsRemembered)] = nil
        return (heartbeatsSent, presenceVersion)
    }

    /// Notes that this node's heartbeat number `beat` came back through the database: its
    /// listener worked up to when that heartbeat was sent.
    package func heardOwnHeartbeat(beat: UInt64) {
        guard let sent = heartbeatSentAt[beat] else { return }
        lastOwnHeartbeat = max(lastOwnHeartbeat ?? sent, sent)
        heartbeatSentAt = heartbeatSentAt.filter { $0.key > beat }
    }

    /// Own heartbeats not yet echoed whose send time is kept: at the shortest interval (0.1 s)
    /// a listener more than about 7 minutes behind forgets nobody until it catches up.
    private static let heartbeatsRemembered: UInt64 = 4096

    /// Records one part of another node's roster; returns the presences it changed overall.
    package func applyRoster(node: String, version: UInt64, part: Int, parts: Int, users: [UserID]) -> [Presence] {
        let changed = cluster.applyRoster(node: node, version: version, part: part, parts: parts, users: users, at: .now)
        return changed.compactMap { user, onlineThere in
            // Before the roster the user was online there exactly when they are not now.
            let before = isLocallyOnline(user) || (onlineThere ? cluster.nodesHolding(user) > 1 : true)
            return overallChange(of: user, before: before)
        }
    }

    /// Forgets nodes silent for longer than their limit (crashed nodes): their users count as
    /// offline unless connected elsewhere. Returns the presences that changed.
    ///
    /// Silence is judged at the moment this node *sent* its newest heartbeat that came back, not
    /// at "now": notifications arrive in the order their transactions committed, so every signal
    /// another node committed before that heartbeat was handled before its echo. A node silent
    /// past its limit by then really was silent, however long the listener took to hand the
    /// signals over; silence after it may be this node's own listener being down or behind
    /// (forgetting then would show every remote user offline).
    package func forgetSilentNodes(ownSilenceLimit: Duration) -> [Presence] {
        guard let lastOwnHeartbeat else { return [] }
        return cluster.forgetSilentNodes(at: lastOwnHeartbeat, unannouncedLimit: ownSilenceLimit)
            .compactMap { overallChange(of: $0, before: true) }
    }

    /// Notes that this node's signal listener (re)started: the other nodes' silence while it was
    /// down says nothing of them, so it counts from now.
    package func listenerRestarted() {
        cluster.listenerRestarted(at: .now)
    }

    /// Queues users whose presence this node's streams should be told; returns whether the caller
    /// must start draining the queue (nobody is draining it yet).
    ///
    /// Why one queue: a roster or a dead node can change many users at once, and each needs a
    /// contact read; one drain at a time keeps those reads from piling up on a slow database,
    /// and a user queued twice is told once (what is told is read when published).
    package func queuePresenceBroadcasts(_ users: some Sequence<UserID>) -> Bool {
        pendingPresenceBroadcasts.formUnion(users)
        guard !pendingPresenceBroadcasts.isEmpty, !drainingPresenceBroadcasts else { return false }
        drainingPresenceBroadcasts = true
        return true
    }

    /// The next queued user to tell about, or nil (and the drain ends) when the queue is empty.
    package func nextPresenceBroadcast() -> UserID? {
        guard let user = pendingPresenceBroadcasts.popFirst() else {
            drainingPresenceBroadcasts = false
            return nil
        }
        return user
    }

    /// Publishes `user`'s presence as it is now to those of `recipients` connected here.
    ///
    /// Read at publish time, in this actor's step, rather than passed in: two announcements of
    /// one user racing through their contact reads then cannot leave the older state last.
    package func publishPresence(of user: UserID, to recipients: [UserID]) {
        publishEphemeral(.presenceChanged(presence(of: user)), to: recipients)
    }

    /// The user's presence if it differs from `before`; a user who went offline is stamped now.
    private func overallChange(of user: UserID, before: Bool) -> Presence? {
        let online = isLocallyOnline(user) || cluster.isOnline(user)
        guard online != before else { return nil }
        if !online { lastSeen[user] = Date.millisecondNow() }
        return presence(of: user)
    }

    /// Closes every subscriber of one session (the session was revoked).
    package func closeSession(_ session: SessionID, of user: UserID, reason: String) {
        for subscription in subscribers[user]?.values ?? [:].values where subscription.sessionID == session {
            subscription.close(reason: reason)
        }
    }

    /// Ends every subscription; later subscribers are closed at once.
    package func shutdown() {
        stopped = true
        for subscription in subscribers.values.flatMap(\.values) {
            subscription.close(reason: "shutdown")
        }
    }

    /// Sends an ephemeral event to whichever of `recipients` are connected here.
    package func publishEphemeral(_ event: ServerEvent, to recipients: [UserID]) {
        guard let payload = try? VestnikJSON.encode(event) else { return }
        let delivery = Delivery.ephemeral(event: event, payload: payload)
        for user in recipients {
            for subscription in subscribers[user]?.values ?? [:].values {
                _ = subscription.offer(delivery)
            }
        }
    }

    /// Hands committed events to the hub; they are delivered in position order.
    package func publish(_ events: [CommittedEvent]) async {
        guard started else { return }
        for event in events where event.seq > deliveredUpTo {
            pending[event.seq.value] = event
        }
        await drain()
    }

    /// Picks up events committed elsewhere (another process or node) up to the store's head.
    package func catchUp() async {
        guard started else { return }
        do {
            let head = try await store.headSeq()
            guard head > deliveredUpTo else { return }
            // A placeholder marks the head as wanted; drain fills everything below it.
            try await fill(through: head)
            await drain()
        } catch {
            logger.backgroundFailure("event hub catch-up failed", error)
        }
    }

    private func drain() async {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while true {
            while let next = pending.removeValue(forKey: deliveredUpTo.value + 1) {
                deliver(next)
                deliveredUpTo = next.seq
            }
            guard let lowestPending = pending.keys.min() else { return }
            // A gap: an earlier position committed but was not published here (yet).
            do {
                try await fill(through: EventSeq(lowestPending - 1))
            } catch {
                logger.backgroundFailure("event hub gap fill failed", error)
                return
            }
            if pending[deliveredUpTo.value + 1] == nil, let lowest = pending.keys.min(), lowest > deliveredUpTo.value + 1 {
                // The store has nothing for the gap yet. Positions are gap-free (decision 0001),
                // so a later one being here means the missing ones committed: they will be
                // readable at the next attempt (the next publish or catch-up tick). Skipping them
                // now would lose them for every live stream, so wait; only a gap that stays
                // for `maxGapWait` (positions pruned, or a bug) is skipped, rather than stalling
                // every stream forever.
                let gap = deliveredUpTo.value + 1
                let now = ContinuousClock.now
                guard let noticed = gapNoticed, noticed.seq == gap, now - noticed.at >= Self.maxGapWait else {
                    if gapNoticed?.seq != gap { gapNoticed = (gap, now) }
                    return
                }
                logger.error(
                    "event hub skipping missing positions",
                    metadata: ["vestnik.from": "\(gap)", "vestnik.to": "\(lowest - 1)"])
                deliveredUpTo = EventSeq(lowest - 1)
                gapNoticed = nil
            }
        }
    }

    private func fill(through target: EventSeq) async throws {
        var cursor = deliveredUpTo
        while cursor < target {
            let batch = try await store.committedEvents(after: cursor, through: target, limit: 1000)
            guard let last = batch.last else { break }
            for event in batch where event.seq > deliveredUpTo && pending[event.seq.value] == nil {
                pending[event.seq.value] = event
            }
            cursor = last.seq
            // Deliver as we go so a large foreign burst does not pile up in memory.
            while let next = pending.removeValue(forKey: deliveredUpTo.value + 1) {
                deliver(next)
                deliveredUpTo = next.seq
            }
        }
    }

    private func deliver(_ event: CommittedEvent) {
        let delivery = Delivery.durable(seq: event.seq, event: event.event, payload: event.payload)
        for user in event.recipients {
            guard let forUser = subscribers[user] else { continue }
            for subscription in forUser.values {
                _ = subscription.offer(delivery)
            }
        }
    }
}
