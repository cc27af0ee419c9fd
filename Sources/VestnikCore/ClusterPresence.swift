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
/// for that user and node, notices from a gap in the numbers or from a heartbeat that it missed
/// something, and then asks for the roster, which replaces everything older. Presence converges
/// within a heartbeat whatever was lost.
package struct ClusterPresence: Sendable {
    /// What asking for a roster should be: nothing, or one node's roster.
    package enum Follow: Sendable, Equatable {
        case none
        case requestRoster(node: String)
    }

    private struct Node {
        var lastHeard: ContinuousClock.Instant
        /// The version of the last roster applied (0: none; a node's versions start at 1).
        var rosterVersion: UInt64 = 0
        /// The highest version heard in a change, a heartbeat that was caught up, or a roster.
        var highestSeen: UInt64 = 0
        /// Users online on that node, with the version that said so.
        var online: [UserID: UInt64] = [:]
        /// Users a change since the last roster reported offline, with that change's version
        /// (so an older "online" arriving late cannot bring them back).
        var offline: [UserID: UInt64] = [:]
        var lastRequest: ContinuousClock.Instant?
        var assembly: RosterAssembly?

        init(heard: ContinuousClock.Instant) { lastHeard = heard }

        func floor(of user: UserID) -> UInt64 { max(rosterVersion, online[user] ?? 0, offline[user] ?? 0) }
    }

    private struct RosterAssembly {
        var version: UInt64
        var parts: Int
        var received: [Int: [UserID]] = [:]
    }

    /// Parts and users per part a roster may claim (bounds what a malformed signal can allocate).
    package static let maxRosterParts = 10_000
    package static let maxUsersPerRosterPart = 1_000
    /// How often one node's roster is asked for at most.
    package static let requestInterval = Duration.seconds(2)

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
    /// Returns whether to ask that node for its roster.
    package mutating func apply(user: UserID, online: Bool, version: UInt64?, node: String, at now: ContinuousClock.Instant) -> Follow {
        var state = nodes[node] ?? Node(heard: now)
        state.lastHeard = now
        var follow = Follow.none
        if let version {
            if version > state.floor(of: user) {
                set(user, online: online, version: version, in: &state)
            }
            // A number skipped: some change (of any user) was lost or is still on its way.
            if version > state.highestSeen + 1 { follow = request(&state, node: node, at: now) }
            state.highestSeen = max(state.highestSeen, version)
        } else {
            set(user, online: online, version: 0, in: &state)
        }
        nodes[node] = state
        return follow
    }

    /// A node's heartbeat with its newest version (nil from a node that does not number them).
    /// A node heard of for the first time, or one whose newest change this node has not seen,
    /// is asked for its roster.
    package mutating func heartbeat(node: String, version: UInt64?, at now: ContinuousClock.Instant) -> Follow {
        var state = nodes[node] ?? Node(heard: now)
        state.lastHeard = now
        var follow = Follow.none
        if let version, version > state.highestSeen {
            follow = request(&state, node: node, at: now)
        }
        nodes[node] = state
        return follow
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
        guard version > state.rosterVersion else { return [:] }
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
        for (user, since) in state.online where since < version && !roster.contains(user) {
            state.online[user] = nil
            changed[user] = false
        }
        for user in roster where state.online[user] == nil && version > state.floor(of: user) {
            state.online[user] = version
            changed[user] = true
        }
        // Offline marks at or below the roster are implied by it now.
        state.offline = state.offline.filter { $0.value > version }
        state.rosterVersion = version
        state.highestSeen = max(state.highestSeen, version)
        return changed
    }

    /// Forgets nodes not heard from within `timeout` (crashed, or cut off from the database);
    /// returns the users who were online there. A node heard again later is asked for its roster.
    package mutating func forgetSilentNodes(timeout: Duration, at now: ContinuousClock.Instant) -> Set<UserID> {
        var dropped: Set<UserID> = []
        for (node, state) in nodes where now - state.lastHeard > timeout {
            nodes[node] = nil
            dropped.formUnion(state.online.keys)
        }
        return dropped
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
