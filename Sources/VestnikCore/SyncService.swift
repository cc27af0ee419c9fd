import Foundation
import Logging
import VestnikModel

/// Catch-up from the ordered log, live subscriptions, and presence.
package struct SyncService: Sendable {
    private let context: CoreContext

    package init(context: CoreContext) { self.context = context }

    /// Events for the caller after `since`, oldest first, at most `limit`.
    ///
    /// Throws `resync_required` when `since` is older than the log keeps (or newer than the log
    /// has, which means the client's state came from somewhere else).
    package func catchUp(since: EventSeq, limit rawLimit: Int, as caller: AuthenticatedSession) async throws -> (events: [LoggedEvent], next: EventSeq, hasMore: Bool) {
        let limit = max(1, min(rawLimit, 1000))
        return try await context.read { reader in
            try await Self.requireServable(since, reader: reader)
            let events = try await reader.events(for: caller.userID, after: since, limit: limit + 1)
            let page = Array(events.prefix(limit))
            let hasMore = events.count > limit
            // With nothing more for this user, the position moves to the head: a quiet client's
            // cursor then never falls behind the retention window.
            let next = hasMore ? (page.last?.seq ?? since) : max(page.last?.seq ?? since, try await reader.headSeq())
            return (page, next, hasMore)
        }
    }

    /// Reads one page of the caller's events in `(since, through]` for a stream's catch-up.
    ///
    /// Checks in the same snapshot that `since` is still retained, so a prune between pages turns
    /// into `resync_required` rather than a silent gap.
    package func catchUpPage(after since: EventSeq, through: EventSeq, limit: Int, as user: UserID) async throws -> [LoggedEvent] {
        try await context.read { reader in
            try await Self.requireServable(since, reader: reader)
            return try await reader.events(for: user, after: since, limit: limit).filter { $0.seq <= through }
        }
    }

    /// Whether a stream may resume from `since`.
    package func checkResumable(_ since: EventSeq) async throws {
        try await context.read { reader in try await Self.requireServable(since, reader: reader) }
    }

    /// The newest committed position: where a client that just fetched a snapshot starts.
    package func headPosition() async throws -> EventSeq {
        try await context.read { try await $0.headSeq() }
    }

    /// The newest position delivered live on this node.
    package func livePosition() async -> EventSeq { await context.hub.position }

    /// Deliveries a stream may have waiting before it counts as too slow (transports bound
    /// their own buffers by it too).
    package var streamBufferLimit: Int { context.hub.bufferLimit }

    /// Opens a live subscription for a session and announces the user online if this is their
    /// first connection.
    package func connect(_ caller: AuthenticatedSession) async -> EventHub.Subscription {
        let (subscription, transition) = await context.hub.subscribe(user: caller.userID, session: caller.sessionID)
        await announce(transition, of: caller.userID)
        return subscription
    }

    /// Closes a subscription and announces the user offline if it was their last connection.
    package func disconnect(_ subscription: EventHub.Subscription) async {
        let transition = await context.hub.unsubscribe(subscription)
        await announce(transition, of: subscription.userID)
    }

    /// Deletes log entries older than `age`; clients further behind get `resync_required`.
    /// Runs in transactions of at most `batch` entries: each holds the log, which every send
    /// needs, so an hour's backlog deleted at once would stall sends for as long.
    package func prune(olderThan age: TimeInterval, batch: Int = pruneBatch) async throws -> Int {
        let before = Date.millisecondNow().addingTimeInterval(-age)
        let batch = max(batch, 1)
        var pruned = 0
        while true {
            try Task.checkCancellation()
            let deleted = try await context.store.write { tx in try await tx.pruneEvents(before: before, limit: batch) }
            pruned += deleted
            if deleted < batch { return pruned }
        }
    }

    /// Log entries deleted per transaction by ``prune(olderThan:batch:)``.
    package static let pruneBatch = 5_000

    /// Applies a signal from another node: typing goes to this node's subscribers in the chat;
    /// presence updates the cluster-wide view and is announced here if the user's overall state
    /// changed; a roster request is answered, and a lost change asks for the sender's roster.
    ///
    /// The listener hands signals over one at a time and a node's liveness is judged by when its
    /// signals are handled, so anything that may take long (a roster's sends, many users' contact
    /// reads) runs in a task of its own.
    package func receive(_ envelope: EphemeralEnvelope) async {
        guard let relay = context.relay else { return }
        if envelope.node == relay.nodeID {
            if case .alive(_, _, let beat?) = envelope.signal { await context.hub.heardOwnHeartbeat(beat: beat) }
            return
        }
        switch envelope.signal {
        case .alive(let version, let milliseconds, let beat):
            let interval = milliseconds.map { Duration.milliseconds($0) }
            await follow(await context.hub.heardFrom(node: envelope.node, version: version, interval: interval, beat: beat))
        case .typing(let chatID, let userID):
            do {
                let members = try await context.read { try await $0.memberIDs(of: chatID) }
                await context.hub.publishEphemeral(.typing(chatID: chatID, userID: userID), to: members.filter { $0 != userID })
            } catch {
                context.logger.debug("remote typing dropped", metadata: ["vestnik.error": "\(error)"])
            }
        case .presence(let userID, let online, let version):
            if await context.hub.setRemotePresence(userID, online: online, version: version, node: envelope.node) != nil {
                await broadcastInBackground([userID])
            }
        case .rosterRequest(let node):
            guard node == nil || node == relay.nodeID, let (version, users) = await context.hub.rosterForAnswer() else { return }
            Task { await Self.sendRoster(version: version, users: users, over: relay) }
        case .roster(let version, let part, let parts, let users):
            let changed = await context.hub.applyRoster(node: envelope.node, version: version, part: part, parts: parts, users: users)
            await broadcastInBackground(changed.map(\.userID))
        }
    }

    /// The cluster heartbeat (every `interval`): tells the other nodes this one is alive, how far
    /// its presence changes go and how often it says so, and forgets nodes silent for three of
    /// their own intervals, telling this node's clients that their users went offline.
    package func heartbeat(every interval: Duration) async {
        guard let relay = context.relay else { return }
        let (beat, version) = await context.hub.nextHeartbeat()
        await relay.send(.alive(presenceVersion: version, intervalMilliseconds: Int(interval.wholeMilliseconds), beat: beat))
        let gone = await context.hub.forgetSilentNodes(ownSilenceLimit: interval * 3)
        await broadcastInBackground(gone.map(\.userID))
    }

    /// Asks every other node for its roster: when this node starts listening, since it may have
    /// missed any number of changes before (and the other nodes' silence counts from then).
    package func requestRosters() async {
        await context.hub.listenerRestarted()
        await context.relay?.send(.rosterRequest(node: nil))
    }

    /// Users per roster part: a `NOTIFY` payload holds at most 8,000 bytes, and a user id takes 39
    /// of them in JSON.
    package static let rosterPartSize = 150

    private static func sendRoster(version: UInt64, users: [UserID], over relay: any EphemeralRelay) async {
        let parts = max(1, (users.count + rosterPartSize - 1) / rosterPartSize)
        for part in 0..<parts {
            let slice = users.dropFirst(part * rosterPartSize).prefix(rosterPartSize)
            await relay.send(.roster(version: version, part: part, parts: parts, users: Array(slice)))
        }
    }

    private func follow(_ follow: ClusterPresence.Follow) async {
        if case .requestRoster(let node) = follow { await context.relay?.send(.rosterRequest(node: node)) }
    }

    private func announce(_ transition: EventHub.PresenceTransition, of user: UserID) async {
        switch transition {
        case .none:
            return
        case .cameOnline(let version):
            await context.relay?.send(.presence(userID: user, online: true, version: version))
        case .wentOffline(_, let version):
            await context.relay?.send(.presence(userID: user, online: false, version: version))
            // Offline here but still connected to another node: nobody should see "offline".
            if await context.hub.presence(of: user).online { return }
        }
        await broadcastPresence(of: user)
    }

    /// Tells `users`' contacts connected here their presence, off the caller's path: through the
    /// hub's queue, drained by one task at a time.
    private func broadcastInBackground(_ users: [UserID]) async {
        guard !users.isEmpty, await context.hub.queuePresenceBroadcasts(users) else { return }
        let service = self
        Task {
            while let user = await service.context.hub.nextPresenceBroadcast() { await service.broadcastPresence(of: user) }
        }
    }

    private func broadcastPresence(of user: UserID) async {
        // A roster or a dead node can change many users at once: skip their contact reads when
        // no stream here could be told.
        guard await context.hub.hasSubscribers else { return }
        do {
            let contacts = try await context.read { try await $0.contacts(of: user, limit: 5000) }
            await context.hub.publishPresence(of: user, to: contacts)
        } catch {
            context.logger.backgroundFailure("presence fan-out failed", error)
        }
    }

    private static func requireServable(_ since: EventSeq, reader: any StoreReader) async throws {
        guard since.value >= 0 else { throw VestnikError.invalid("since must not be negative.") }
        let oldest = try await reader.oldestRetainedSeq()
        let head = try await reader.headSeq()
        if since > head {
            throw VestnikError(.resyncRequired, "The position \(since) is ahead of this server's log; refetch your chats and reconnect without since.")
        }
        if since.value < oldest.value - 1 {
            throw VestnikError(.resyncRequired, "Events since \(since) are no longer kept; refetch your chats and reconnect without since.")
        }
    }
}
