import Foundation
import Logging
import Testing
import VestnikCore
import VestnikModel

/// How one node's view of the others' users survives lost, late and reordered signals.
@Suite struct ClusterPresenceTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    @Test("an older change arriving after a newer one is ignored; a skipped number asks for the roster")
    func reorderedChanges() {
        var view = ClusterPresence()
        let alice = UserID.random()
        #expect(view.apply(user: alice, online: true, version: 1, node: "b", at: at(0)) == .none)
        // v2 (offline) and v3 (online again) were sent from two connections; v3 arrives first.
        #expect(view.apply(user: alice, online: true, version: 3, node: "b", at: at(0.1)) == .requestRoster(node: "b"))
        #expect(view.apply(user: alice, online: false, version: 2, node: "b", at: at(0.2)) == .none)
        #expect(view.isOnline(alice), "the late offline (v2) must not undo the newer online (v3)")
        // And the other way round: offline v5 first, the older online v4 late.
        _ = view.apply(user: alice, online: false, version: 5, node: "b", at: at(0.3))
        _ = view.apply(user: alice, online: true, version: 4, node: "b", at: at(0.4))
        #expect(!view.isOnline(alice))
    }

    @Test("a heartbeat from a node never heard of, or ahead of what was heard, asks for its roster (at most every 2 s)")
    func heartbeats() {
        var view = ClusterPresence()
        #expect(view.heartbeat(node: "empty", version: 0, at: at(0)) == .none, "a node without changes has nothing to send")
        #expect(view.heartbeat(node: "b", version: 7, at: at(0)) == .requestRoster(node: "b"))
        #expect(view.heartbeat(node: "b", version: 7, at: at(1)) == .none, "asked a second ago")
        #expect(view.heartbeat(node: "b", version: 7, at: at(2.5)) == .requestRoster(node: "b"), "the roster did not come: ask again")
        _ = view.applyRoster(node: "b", version: 7, part: 0, parts: 1, users: [], at: at(2.6))
        #expect(view.heartbeat(node: "b", version: 7, at: at(5)) == .none, "caught up")
        #expect(view.heartbeat(node: "old", version: nil, at: at(5)) == .none, "a node of the previous release sends no version")
    }

    @Test("a roster replaces older state, keeps changes newer than itself, and applies only once all its parts are in")
    func rosters() {
        var view = ClusterPresence()
        let (stays, leaves, joins, lateJoiner, lateLeaver) = (UserID.random(), UserID.random(), UserID.random(), UserID.random(), UserID.random())
        _ = view.apply(user: stays, online: true, version: 1, node: "b", at: at(0))
        _ = view.apply(user: leaves, online: true, version: 2, node: "b", at: at(0))
        // Changes after the roster's version, seen before the roster.
        _ = view.apply(user: lateJoiner, online: true, version: 11, node: "b", at: at(0))
        _ = view.apply(user: lateLeaver, online: false, version: 12, node: "b", at: at(0))

        let first = view.applyRoster(node: "b", version: 10, part: 1, parts: 2, users: [joins, lateLeaver], at: at(0.1))
        #expect(first.isEmpty && !view.isOnline(joins), "half a roster changes nothing")
        let changed = view.applyRoster(node: "b", version: 10, part: 0, parts: 2, users: [stays], at: at(0.2))
        #expect(changed == [leaves: false, joins: true])
        #expect(view.isOnline(stays) && view.isOnline(joins) && !view.isOnline(leaves))
        #expect(view.isOnline(lateJoiner), "online at v11, after the roster's v10")
        #expect(!view.isOnline(lateLeaver), "offline at v12 though the v10 roster still had them")
        // A change at or below the roster's version is already in it.
        _ = view.apply(user: leaves, online: true, version: 9, node: "b", at: at(0.3))
        #expect(!view.isOnline(leaves))
        // An older roster arriving late is ignored.
        #expect(view.applyRoster(node: "b", version: 8, part: 0, parts: 1, users: [leaves], at: at(0.4)).isEmpty)
        #expect(!view.isOnline(leaves))
    }

    @Test("malformed roster parts are refused without allocating")
    func malformedRoster() {
        var view = ClusterPresence()
        let user = UserID.random()
        #expect(view.applyRoster(node: "b", version: 1, part: 1, parts: 1, users: [user], at: at(0)).isEmpty)
        #expect(view.applyRoster(node: "b", version: 1, part: 0, parts: 0, users: [user], at: at(0)).isEmpty)
        #expect(view.applyRoster(node: "b", version: 1, part: 0, parts: ClusterPresence.maxRosterParts + 1, users: [user], at: at(0)).isEmpty)
        let tooMany = (0...ClusterPresence.maxUsersPerRosterPart).map { _ in UserID.random() }
        #expect(view.applyRoster(node: "b", version: 1, part: 0, parts: 1, users: tooMany, at: at(0)).isEmpty)
        #expect(!view.isOnline(user))
    }

    @Test("a silent node is forgotten with its users; heard again, it is asked for its roster")
    func silentNodes() {
        var view = ClusterPresence()
        let (alice, bob) = (UserID.random(), UserID.random())
        _ = view.apply(user: alice, online: true, version: 1, node: "b", at: at(0))
        _ = view.apply(user: bob, online: true, version: 1, node: "c", at: at(0))
        _ = view.heartbeat(node: "c", version: 1, at: at(10))
        #expect(view.forgetSilentNodes(timeout: .seconds(15), at: at(16)) == [alice])
        #expect(!view.isOnline(alice) && view.isOnline(bob))
        #expect(view.knownNodes == ["c"])
        #expect(view.heartbeat(node: "b", version: 1, at: at(17)) == .requestRoster(node: "b"))
    }

    @Test("the hub numbers its own transitions, reports overall changes once, and hands out its roster at most once a second")
    func hubCombinesLocalAndRemote() async throws {
        let env = try await TestEnvironment()
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (alice, bob) = (UserID.random(), UserID.random())
        let (subscription, transition) = await hub.subscribe(user: alice, session: nil)
        guard case .cameOnline(let version) = transition else {
            Issue.record("expected cameOnline, got \(transition)")
            return
        }
        let current = await hub.localPresenceVersion
        #expect(version == 1 && current == 1)
        // Alice is here already: another node's report changes nothing overall.
        #expect((await hub.setRemotePresence(alice, online: true, version: 1, node: "b")).changed == nil)
        let bobOnline = await hub.applyRoster(node: "b", version: 3, part: 0, parts: 1, users: [alice, bob])
        #expect(bobOnline.map(\.userID) == [bob] && bobOnline.first?.online == true)
        // Alice leaves here but is still on node b: no overall change, and her version moves on.
        guard case .wentOffline(_, let offlineVersion) = await hub.unsubscribe(subscription) else {
            Issue.record("expected wentOffline")
            return
        }
        #expect(offlineVersion == 2)
        #expect(await hub.presence(of: alice).online)
        let gone = await hub.applyRoster(node: "b", version: 4, part: 0, parts: 1, users: [])
        #expect(Set(gone.map(\.userID)) == [alice, bob] && gone.allSatisfy { !$0.online && $0.lastSeenAt != nil })

        _ = await hub.subscribe(user: bob, session: nil)
        let roster = try #require(await hub.rosterForAnswer())
        #expect(roster.users == [bob] && roster.version == 3)
        #expect(await hub.rosterForAnswer() == nil, "answered less than a second ago")
    }
}
