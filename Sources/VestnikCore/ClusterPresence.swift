import Foundation
import VestnikModel

/// What this node knows of the users connected to the other nodes of a cluster.
///
/// Why versions and rosters: nodes tell each other about presence over `NOTIFY`, which is best
/// effort. A node that starts late, a listener that reconnects, or a database outage misses
/// changes, and two changes sent from different pooled connections can arrive in either order.
/// Each node therefore numbers its own changes (``EventHub``'s presence version), announces its
/// newest number with every heartbeat, and sends its whole *roster* (the users connected to it,
/// at one version) when asked. A receiver applies a change only if it is newer than what it holds
/// for that user and node. A number skipped by a later change and still unseen a second later, or
/// announced by the previous heartbeat and still unseen at the next, means a change was lost: the
/// receiver asks for the roster, which replaces everything older, and keeps asking at each
/// heartbeat until one arrives. Presence therefore converges within about two heartbeats whatever
/// was lost, while a change that is merely overtaken by another costs nothing.
package struct ClusterPresence: Sendable {
    /// What to do after a signal: nothing, or ask one node for its roster.
    package enum Follow: Sendable, Equatable {
        case none
        case requestRoster(node: String)
    }

    private struct Node {
        var lastHeard: ContinuousClock.Instant
        /// Silence after which the node counts as dead: three of *its* heartbeats (nil until its
        /// first heartbeat says how often it beats).
        var silenceLimit: Duration?
        /// The version of the last roster applied (nil: none yet, or numbers reset).
        var rosterVersion: UInt64?
        /// The highest version heard in a change or a roster.
        var highestSeen: UInt64 = 0
        /// Numbers skipped by a later change, and when that was noticed.
        var missing: [UInt64: ContinuousClock.Instant] = [:]
        /// The version the previous heartbeat announced.
        var announced: UInt64 = 0
        /// The highest number seen when the previous heartbeat was handled: the node counted at
        /// least that far before sending the current one (see ``heartbeat(node:version:interval:at:)``).
        var seenBeforeLastHeartbeat: UInt64 = 0
        /// The number of the newest heartbeat handled (nil from nodes that do not number them).
        var lastBeat: UInt64?
        /// A roster at or above this version is needed (a change was lost).
        var wanted: UInt64?
        /// Users online on that node, with the version that said so.
        var online: [UserID: UInt64] = [:]
        /// Users a change since the last roster reported offline, with that change's version
        /// (so an older "online" arriving late cannot bring them back).
        var offline: [UserID: UInt64] = [:]
        var lastRequest: ContinuousClock.Instant?
        var assembly: RosterAssembly?

        init(heard: ContinuousClock.Instant, silenceLimit: Duration? = nil) {
            lastHeard = heard
            self.silenceLimit = silenceLimit
        }

        func floor(of user: UserID) -> UInt64 { max(rosterVersion ?? 0, online[user] ?? 0, offline[user] ?? 0) }

        /// The highest number held of the node, from any signal.
        var highestKnown: UInt64 { max(highestSeen, announced, rosterVersion ?? 0) }

        /// Whether `version` is believable: a node counts its transitions one by one, so a number
        /// far beyond anything seen is a corrupt signal (and would freeze the node's presence if
        /// taken, since nothing newer could follow it). A node with nothing seen yet may start
        /// anywhere: one running for months is far past any fixed bound.
        func plausible(_ version: UInt64) -> Bool {
            let known = highestKnown
            return known == 0 || version <= known || version - known <= ClusterPresence.maxVersionJump
        }

        /// Forgets every number held of the node and wants its roster at the announced number or
        /// later (its users stay, as "seen at 0", until that roster replaces them): after a
        /// heartbeat announced less than the node had already counted, which a node that counts
        /// up never does, so what was seen was corrupt.
        mutating func restartNumbering(at announcedVersion: UInt64) {
            rosterVersion = nil
            highestSeen = 0
            missing = [:]
            offline = [:]
            assembly = nil
            online = online.mapValues { _ in 0 }
            announced = announcedVersion
            seenBeforeLastHeartbeat = announcedVersion
            wanted = announcedVersion
        }
    }

    private struct RosterAssembly {
        var version: UInt64
        var parts: Int
        var received: [Int: [UserID]] = [:]
    }

    /// Parts and users per part a roster may claim (bounds what a malformed signal can allocate).
    package static let maxRosterParts = 10_000
    package static let maxUsersPerRosterPart = 1_000
    /// How far ahead of what was seen a version may jump.
    package static let maxVersionJump: UInt64 = 1 << 32
    /// Skipped numbers tracked one by one; a longer gap just asks for the roster.
    package static let maxMissing = 256
    /// How long a skipped number may be on its way before it counts as lost.
    package static let missingGrace = Duration.seconds(1)
    /// How often one node's roster is asked for at most.
    package static let requestInterval = Duration.seconds(2)
    /// The heartbeat intervals a node may announce (`VESTNIK_CLUSTER_HEARTBEAT_SECONDS`).
    package static let heartbeatRange = Duration.milliseconds(100)...Duration.seconds(60)
    /// The silence limit of a node whose heartbeats do not say their interval (the previous
    /// release's: 3 × 5 s).
    package static let defaultSilenceLimit = Duration.seconds(15)

    private var nodes: [String: Node] = [:]

    package init() {}

    /// Whether any other node holds a connection of `user`.
    package func isOnline(_ user: UserID) -> Bool {
        nodes.values.contains { $0.online[user] != nil }
    }

    /// How many other nodes hold a connection of `user`.
    package func nodesHolding(_ user: UserID) -> Int {
        nodes.values.reduce(0) { $0 + ($1.online[user] != nil ? 1 : 0) }
    }

    /// A node's change: `user`'s first connection there opened or its last one closed, at
    /// `version` of that node (nil from a node that does not number its changes: applied as is).
    package mutating func apply(user: UserID, online: Bool, version: UInt64?, node: String, at now: ContinuousClock.Instant) {
        var state = nodes[node] ?? Node(heard: now)
        state.lastHeard = now
        defer { nodes[node] = state }
        guard let version else {
            set(user, online: online, version: 0, in: &state)
            return
        }
        guard version > 0, state.plausible(version) else { return }
        if version > state.floor(of: user) { set(user, online: online, version: version, in: &state) }
        if version > state.highestSeen {
            let gap = version - state.highestSeen - 1
            if gap > UInt64(Self.maxMissing) {
                state.wanted = max(state.wanted ?? 0, version)
            } else if gap > 0 {
                for skipped in (state.highestSeen + 1)..<version { state.missing[skipped] = now }
                // Many gaps without a heartbeat to settle them: ask for the roster instead.
                if state.missing.count > Self.maxMissing {
                    state.missing = [:]
                    state.wanted = max(state.wanted ?? 0, version)
                }
            }
            state.highestSeen = version
        } else {
            state.missing[version] = nil
        }
    }

    /// A node's heartbeat: its newest version (nil from a node that does not number them) and its
    /// interval. A node heard of for the first time with changes to its name, a number announced
    /// by the previous heartbeat and still unseen, or a skipped number still missing after a
    /// grace, asks for the node's roster (again at each heartbeat until one comes).
    ///
    /// `beat` numbers the node's heartbeats: one older than a heartbeat already handled (its send
    /// timed out on one connection and committed after the next went out on another) only shows
    /// the node is alive.
    package mutating func heartbeat(
        node: String, version: UInt64?, interval: Duration?, beat: UInt64? = nil, at now: ContinuousClock.Instant
    ) -> Follow {
        // Clamped: a node claiming an hour-long heartbeat must not stay "alive" for three hours.
        let silenceLimit = interval.map { min(max($0, Self.heartbeatRange.lowerBound), Self.heartbeatRange.upperBound) * 3 }
            ?? Self.defaultSilenceLimit
        guard var state = nodes[node] else {
            var fresh = Node(heard: now, silenceLimit: silenceLimit)
            fresh.lastBeat = beat
            var follow = Follow.none
            if let version, version > 0, fresh.plausible(version) {
                fresh.announced = version
                fresh.wanted = version
                follow = request(&fresh, node: node, at: now)
            }
            fresh.seenBeforeLastHeartbeat = fresh.highestKnown
            nodes[node] = fresh
            return follow
        }
        state.lastHeard = now
        state.silenceLimit = silenceLimit
        defer { nodes[node] = state }
        if let beat, let last = state.lastBeat, beat <= last { return .none }
        state.lastBeat = beat ?? state.lastBeat
        // Notifications arrive in commit order, so whatever was seen before the previous heartbeat
        // committed before it, and the node counted that far before it read the number this
        // heartbeat carries. Less than that is impossible for a node that counts up: what was
        // seen was corrupt. (A number above this heartbeat's seen *since* the previous one is
        // fine: a change sent beside this heartbeat may commit first.)
        if let version, version < state.seenBeforeLastHeartbeat {
            state.restartNumbering(at: version)
            return request(&state, node: node, at: now)
        }
        if state.announced > state.highestSeen { state.wanted = max(state.wanted ?? 0, state.announced) }
        let lost = state.missing.filter { now - $0.value >= Self.missingGrace }.keys
        if let newestLost = lost.max() {
            state.wanted = max(state.wanted ?? 0, newestLost)
            for number in lost { state.missing[number] = nil }
        }
        if let version, state.plausible(version) { state.announced = max(state.announced, version) }
        state.seenBeforeLastHeartbeat = state.highestKnown
        return state.wanted == nil ? .none : request(&state, node: node, at: now)
    }

    /// One part of a node's roster: the users connected to it at `version`, split into `parts`
    /// parts. Once every part of one version is here the roster replaces what is older; returns
    /// the users whose state on that node it changed, with their new state there.
    package mutating func applyRoster(
        node: String, version: UInt64, part: Int, parts: Int, users: [UserID], at now: ContinuousClock.Instant
    ) -> [UserID: Bool] {
        guard parts >= 1, parts <= Self.maxRosterParts, part >= 0, part < parts, users.count <= Self.maxUsersPerRosterPart else { return [:] }
        var state = nodes[node] ?? Node(heard: now)
        state.lastHeard = now
        defer { nodes[node] = state }
        // With no roster held yet (or numbers reset) only one at the number wanted will do: an
        // older one still arriving would briefly bring back who has left since.
        let newEnough = state.rosterVersion.map { version > $0 } ?? state.wanted.map { version >= $0 } ?? true
        guard newEnough, state.plausible(version) else { return [:] }
        if state.assembly?.version != version || state.assembly?.parts != parts {
            // A newer roster replaces one still arriving (an older one is not worth finishing).
            if let assembling = state.assembly?.version, assembling > version { return [:] }
            state.assembly = RosterAssembly(version: version, parts: parts)
        }
        state.assembly?.received[part] = users
        guard let assembly = state.assembly, assembly.received.count == assembly.parts else { return [:] }
        state.assembly = nil

        let roster = Set(assembly.received.values.joined())
        var changed: [UserID: Bool] = [:]
        // A change at the roster's own number is part of it: anyone set online at or below that
        // number and absent from it is gone.
        for (user, since) in state.online where since <= version && !roster.contains(user) {
            state.online[user] = nil
            changed[user] = false
        }
        for user in roster where state.online[user] == nil && version > state.floor(of: user) {
            state.online[user] = version
            changed[user] = true
        }
        // Offline marks and missing numbers at or below the roster are settled by it.
        state.offline = state.offline.filter { $0.value > version }
        state.missing = state.missing.filter { $0.key > version }
        state.rosterVersion = version
        state.highestSeen = max(state.highestSeen, version)
        if let wanted = state.wanted, version >= wanted { state.wanted = nil }
        return changed
    }

    /// Forgets nodes silent for longer than their limit (crashed, or cut off from the database);
    /// returns the users who were online there. A node heard again later is asked for its roster.
    ///
    /// A node known only from its changes or roster, whose heartbeat has not said its interval
    /// yet, gets `unannouncedLimit` (this node's own: nodes of one cluster are usually configured
    /// alike, and a node that beats slower is simply asked for its roster when heard again).
    package mutating func forgetSilentNodes(at now: ContinuousClock.Instant, unannouncedLimit: Duration) -> Set<UserID> {
        var dropped: Set<UserID> = []
        for (node, state) in nodes where now - state.lastHeard > (state.silenceLimit ?? unannouncedLimit) {
            nodes[node] = nil
            dropped.formUnion(state.online.keys)
        }
        return dropped
    }

    /// Restarts every known node's silence from `now`: this node's listener was down, so their
    /// silence until now says nothing of them (each is asked for its roster anyway).
    package mutating func listenerRestarted(at now: ContinuousClock.Instant) {
        for node in nodes.keys { nodes[node]?.lastHeard = now }
    }

    /// The nodes known, for diagnostics and tests.
    package var knownNodes: Set<String> { Set(nodes.keys) }

    private func set(_ user: UserID, online: Bool, version: UInt64, in state: inout Node) {
        if online {
            state.online[user] = version
            state.offline[user] = nil
        } else {
            state.online[user] = nil
            if version > 0 { state.offline[user] = version }
        }
    }

    private func request(_ state: inout Node, node: String, at now: ContinuousClock.Instant) -> Follow {
        if let last = state.lastRequest, now - last < Self.requestInterval { return .none }
        state.lastRequest = now
        return .requestRoster(node: node)
    }
}
