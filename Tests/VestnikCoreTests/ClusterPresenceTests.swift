import Foundation
import Logging
import Testing
import VestnikCore
import VestnikModel

/// How one node's view of the others' users survives lost, late and reordered signals.
@Suite struct ClusterPresenceTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    @Test("an older change arriving after a newer one is ignored; a change merely overtaken asks for nothing")
    func reorderedChanges() {
        var view = ClusterPresence()
        let alice = UserID.random()
        view.apply(user: alice, online: true, version: 1, node: "b", at: at(0))
        // v2 (offline) and v3 (online again) were sent from two connections; v3 arrives first.
        view.apply(user: alice, online: true, version: 3, node: "b", at: at(0.1))
        view.apply(user: alice, online: false, version: 2, node: "b", at: at(0.2))
        #expect(view.isOnline(alice), "the late offline (v2) must not undo the newer online (v3)")
        // And the other way round: offline v5 first, the older online v4 late.
        view.apply(user: alice, online: false, version: 5, node: "b", at: at(0.3))
        view.apply(user: alice, online: true, version: 4, node: "b", at: at(0.4))
        #expect(!view.isOnline(alice))
        // Every number arrived in the end: heartbeats after the grace ask for nothing.
        #expect(view.heartbeat(node: "b", version: 5, interval: .seconds(1), at: at(2)) == .none)
        #expect(view.heartbeat(node: "b", version: 5, interval: .seconds(1), at: at(3)) == .none)
    }

    @Test("a lost change is noticed a grace after the gap and the roster asked for at each heartbeat until it comes")
    func lostChange() {
        var view = ClusterPresence()
        let (alice, bob) = (UserID.random(), UserID.random())
        _ = view.applyRoster(node: "b", version: 5, part: 0, parts: 1, users: [alice], at: at(0))
        // v6 (alice offline) is lost; v7 (bob online) arrives.
        view.apply(user: bob, online: true, version: 7, node: "b", at: at(0.1))
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(0.5)) == .none, "v6 may still be on its way")
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(1.2)) == .requestRoster(node: "b"))
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(2.2)) == .none, "asked a second ago")
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(3.3)) == .requestRoster(node: "b"), "no roster yet: ask again")
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(5.4)) == .requestRoster(node: "b"), "and again")
        let changed = view.applyRoster(node: "b", version: 7, part: 0, parts: 1, users: [bob], at: at(5.5))
        #expect(changed == [alice: false] && !view.isOnline(alice) && view.isOnline(bob))
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(1), at: at(8)) == .none, "caught up")
    }

    @Test("a number announced by a heartbeat and still unseen at the next asks for the roster")
    func announcedButUnseen() {
        var view = ClusterPresence()
        let alice = UserID.random()
        view.apply(user: alice, online: true, version: 1, node: "b", at: at(0))
        view.apply(user: alice, online: true, version: 1, node: "c", at: at(0))
        // Both announce 3: node b's changes 2 and 3 arrive in between, node c's never do.
        #expect(view.heartbeat(node: "b", version: 3, interval: .seconds(1), at: at(1)) == .none)
        #expect(view.heartbeat(node: "c", version: 3, interval: .seconds(1), at: at(1)) == .none)
        view.apply(user: alice, online: false, version: 2, node: "b", at: at(1.2))
        view.apply(user: alice, online: true, version: 3, node: "b", at: at(1.3))
        #expect(view.heartbeat(node: "b", version: 3, interval: .seconds(1), at: at(2)) == .none)
        #expect(view.heartbeat(node: "c", version: 3, interval: .seconds(1), at: at(2)) == .requestRoster(node: "c"))
    }

    @Test("numbers far beyond what was seen are ignored; a heartbeat far behind what was seen resets the node's numbers and asks for its roster")
    func implausibleVersions() {
        var view = ClusterPresence()
        let (alice, bob) = (UserID.random(), UserID.random())
        view.apply(user: bob, online: true, version: 1 << 40, node: "long-running", at: at(0))
        #expect(view.isOnline(bob), "a node heard of for the first time may be far along")
        view.apply(user: alice, online: true, version: 1, node: "b", at: at(0.1))
        view.apply(user: alice, online: false, version: .max, node: "b", at: at(0.2))
        #expect(view.isOnline(alice))
        #expect(view.applyRoster(node: "b", version: .max, part: 0, parts: 1, users: [], at: at(0.3)).isEmpty)
        #expect(view.heartbeat(node: "b", version: .max, interval: .seconds(1), at: at(1)) == .none)
        #expect(view.heartbeat(node: "b", version: 1, interval: .seconds(1), at: at(3)) == .none, "the bogus announcement was not kept")
        view.apply(user: alice, online: false, version: 2, node: "b", at: at(3.1))
        #expect(!view.isOnline(alice), "real changes still apply")
        // A corrupt number within the bound is taken; the heartbeat after next shows it for what
        // it is (the node counted at least that far before sending it, yet announces less).
        view.apply(user: alice, online: true, version: 1 << 31, node: "b", at: at(3.2))
        #expect(view.isOnline(alice))
        #expect(view.heartbeat(node: "b", version: 4, interval: .seconds(1), at: at(4)) == .requestRoster(node: "b"), "the gap up to it")
        #expect(view.applyRoster(node: "b", version: 4, part: 0, parts: 1, users: [], at: at(4.1)).isEmpty, "a roster below the corrupt number settles nothing")
        #expect(view.heartbeat(node: "b", version: 5, interval: .seconds(1), at: at(6.5)) == .requestRoster(node: "b"), "5 < 2^31 seen before: numbers reset")
        #expect(view.applyRoster(node: "b", version: 5, part: 0, parts: 1, users: [], at: at(6.6)) == [alice: false])
        #expect(view.heartbeat(node: "b", version: 5, interval: .seconds(1), at: at(8)) == .none, "caught up")
        // A heartbeat trailing a change sent beside it (committed first) is no reason.
        view.apply(user: alice, online: true, version: 6, node: "b", at: at(8.1))
        #expect(view.heartbeat(node: "b", version: 5, interval: .seconds(1), at: at(8.2)) == .none)
        #expect(view.isOnline(alice))
        #expect(view.heartbeat(node: "b", version: 6, interval: .seconds(1), at: at(9)) == .none)
    }

    @Test("a heartbeat of 0 after 9 resets the node's numbers; only a roster at the number wanted settles its users, even one at 0")
    func resetToZero() {
        var view = ClusterPresence()
        let alice = UserID.random()
        view.apply(user: alice, online: true, version: 9, node: "b", at: at(0))
        _ = view.heartbeat(node: "b", version: 9, interval: .seconds(1), at: at(0.1))
        #expect(view.heartbeat(node: "b", version: 0, interval: .seconds(1), at: at(1)) == .requestRoster(node: "b"))
        #expect(view.isOnline(alice), "kept until the roster says otherwise")
        #expect(view.applyRoster(node: "b", version: 0, part: 0, parts: 1, users: [], at: at(1.1)) == [alice: false])
        // Node c resets at 7; a roster at 5 still arriving from before does not count.
        let bob = UserID.random()
        view.apply(user: bob, online: true, version: 1_000, node: "c", at: at(0))
        _ = view.heartbeat(node: "c", version: 1_000, interval: .seconds(1), at: at(0.1))
        #expect(view.heartbeat(node: "c", version: 7, interval: .seconds(1), at: at(2.5)) == .requestRoster(node: "c"))
        #expect(view.applyRoster(node: "c", version: 5, part: 0, parts: 1, users: [], at: at(2.6)).isEmpty)
        #expect(view.applyRoster(node: "c", version: 7, part: 0, parts: 1, users: [bob], at: at(2.7)).isEmpty, "bob is still there")
        #expect(view.isOnline(bob))
        #expect(view.heartbeat(node: "b", version: 0, interval: .seconds(1), at: at(4)) == .none)
    }

    @Test("a heartbeat older than one already handled only shows the node alive")
    func lateHeartbeat() {
        var view = ClusterPresence()
        let alice = UserID.random()
        view.apply(user: alice, online: true, version: 3, node: "b", at: at(0))
        _ = view.heartbeat(node: "b", version: 3, interval: .seconds(1), beat: 1, at: at(0))
        view.apply(user: alice, online: false, version: 4, node: "b", at: at(0.5))
        _ = view.heartbeat(node: "b", version: 4, interval: .seconds(1), beat: 3, at: at(1))
        // Beat 2 (number 3) timed out on one connection and committed after beat 3.
        #expect(view.heartbeat(node: "b", version: 3, interval: .seconds(1), beat: 2, at: at(1.1)) == .none)
        #expect(view.heartbeat(node: "b", version: 4, interval: .seconds(1), beat: 4, at: at(2)) == .none, "no reset, nothing lost")
        #expect(!view.isOnline(alice))
        #expect(view.forgetSilentNodes(at: at(4.5), unannouncedLimit: .seconds(15)).isEmpty)
        _ = view.heartbeat(node: "b", version: 4, interval: .seconds(1), beat: 4, at: at(5))
        #expect(view.forgetSilentNodes(at: at(7.5), unannouncedLimit: .seconds(15)).isEmpty, "a repeated beat still shows it alive")
    }

    @Test("many gaps without a heartbeat to settle them stop being tracked one by one and ask for the roster")
    func manyGaps() {
        var view = ClusterPresence()
        let alice = UserID.random()
        view.apply(user: alice, online: true, version: 1, node: "b", at: at(0))
        for step in 1...3 { view.apply(user: alice, online: step % 2 == 0, version: UInt64(1 + step * 200), node: "b", at: at(0.1)) }
        #expect(view.heartbeat(node: "b", version: 601, interval: .seconds(5), at: at(0.2)) == .requestRoster(node: "b"), "asked at once, not after a grace")
        // One gap longer than the numbers tracked one by one asks at once too.
        view.apply(user: alice, online: true, version: 1, node: "c", at: at(0))
        view.apply(user: alice, online: false, version: 1_000, node: "c", at: at(0.1))
        #expect(view.heartbeat(node: "c", version: 1_000, interval: .seconds(5), at: at(0.2)) == .requestRoster(node: "c"))
    }

    @Test("a heartbeat from a node never heard of asks for its roster if it has changes (at most every 2 s, until it comes)")
    func heartbeats() {
        var view = ClusterPresence()
        #expect(view.heartbeat(node: "empty", version: 0, interval: .seconds(5), at: at(0)) == .none, "a node without changes has nothing to send")
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(5), at: at(0)) == .requestRoster(node: "b"))
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(5), at: at(1)) == .none, "asked a second ago")
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(5), at: at(2.5)) == .requestRoster(node: "b"), "the roster did not come: ask again")
        _ = view.applyRoster(node: "b", version: 7, part: 0, parts: 1, users: [], at: at(2.6))
        #expect(view.heartbeat(node: "b", version: 7, interval: .seconds(5), at: at(5)) == .none, "caught up")
        #expect(view.heartbeat(node: "old", version: nil, interval: nil, at: at(5)) == .none, "a node of the previous release sends no version")
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

    @Test("a silent node is forgotten with its users after three of its own heartbeats; heard again, it is asked for its roster")
    func silentNodes() {
        var view = ClusterPresence()
        let (alice, bob, carol) = (UserID.random(), UserID.random(), UserID.random())
        view.apply(user: alice, online: true, version: 1, node: "fast", at: at(0))
        view.apply(user: bob, online: true, version: 1, node: "slow", at: at(0))
        view.apply(user: carol, online: true, version: 1, node: "old", at: at(0))
        _ = view.heartbeat(node: "fast", version: 1, interval: .seconds(1), at: at(0))
        _ = view.heartbeat(node: "slow", version: 1, interval: .seconds(5), at: at(0))
        _ = view.heartbeat(node: "old", version: nil, interval: nil, at: at(0))
        #expect(view.forgetSilentNodes(at: at(2.9), unannouncedLimit: .seconds(3)).isEmpty)
        #expect(view.forgetSilentNodes(at: at(3.1), unannouncedLimit: .seconds(3)) == [alice], "three of its 1 s heartbeats; a node that says nothing of its interval is not \"unannounced\"")
        #expect(view.forgetSilentNodes(at: at(14.9), unannouncedLimit: .seconds(3)).isEmpty)
        #expect(view.forgetSilentNodes(at: at(15.1), unannouncedLimit: .seconds(3)) == [bob, carol], "three of 5 s, and the default for a node that says nothing")
        #expect(view.knownNodes.isEmpty)
        #expect(view.heartbeat(node: "fast", version: 1, interval: .seconds(1), at: at(17)) == .requestRoster(node: "fast"))
    }

    @Test("a node known only from its roster or changes is forgotten after the caller's own limit, until its heartbeat says its interval")
    func unannouncedNodes() {
        var view = ClusterPresence()
        let (alice, bob) = (UserID.random(), UserID.random())
        _ = view.applyRoster(node: "rostered", version: 4, part: 0, parts: 1, users: [alice], at: at(0))
        view.apply(user: bob, online: true, version: 1, node: "changed", at: at(0))
        #expect(view.forgetSilentNodes(at: at(2.9), unannouncedLimit: .seconds(3)).isEmpty)
        #expect(view.forgetSilentNodes(at: at(3.1), unannouncedLimit: .seconds(3)) == [alice, bob], "not the 15 s default")
        _ = view.applyRoster(node: "rostered", version: 4, part: 0, parts: 1, users: [alice], at: at(4))
        _ = view.heartbeat(node: "rostered", version: 4, interval: .seconds(5), at: at(4))
        #expect(view.forgetSilentNodes(at: at(7.5), unannouncedLimit: .seconds(3)).isEmpty, "its own 3 × 5 s now")
        #expect(view.forgetSilentNodes(at: at(19.1), unannouncedLimit: .seconds(3)) == [alice])
    }

    @Test("a claimed heartbeat interval is clamped: an hour does not keep a dead node for three")
    func clampedIntervals() {
        var view = ClusterPresence()
        let (alice, bob) = (UserID.random(), UserID.random())
        view.apply(user: alice, online: true, version: 1, node: "lazy", at: at(0))
        view.apply(user: bob, online: true, version: 1, node: "eager", at: at(0))
        _ = view.heartbeat(node: "lazy", version: 1, interval: .seconds(3600), at: at(0))
        _ = view.heartbeat(node: "eager", version: 1, interval: .nanoseconds(1), at: at(0))
        #expect(view.forgetSilentNodes(at: at(0.2), unannouncedLimit: .seconds(15)).isEmpty, "at least 3 × 100 ms")
        #expect(view.forgetSilentNodes(at: at(0.4), unannouncedLimit: .seconds(15)) == [bob])
        #expect(view.forgetSilentNodes(at: at(179), unannouncedLimit: .seconds(15)).isEmpty)
        #expect(view.forgetSilentNodes(at: at(181), unannouncedLimit: .seconds(15)) == [alice], "at most 3 × 60 s")
    }

    @Test("a heartbeat interval goes on the wire in whole milliseconds, rounded toward zero")
    func intervalMilliseconds() {
        #expect(Duration.milliseconds(1_500).wholeMilliseconds == 1_500)
        #expect(Duration.nanoseconds(1_999_999).wholeMilliseconds == 1)
        #expect(Duration.seconds(60).wholeMilliseconds == 60_000)
    }

    @Test("signals of the previous release still decode; a full roster part fits a NOTIFY payload")
    func wireCompatibility() throws {
        let alice = UserID.random()
        let alive = try VestnikJSON.decode(EphemeralEnvelope.self, from: Data(#"{"node":"x","signal":{"alive":{}}}"#.utf8))
        #expect(alive == EphemeralEnvelope(node: "x", signal: .alive(presenceVersion: nil, intervalMilliseconds: nil)))
        let numbered = try VestnikJSON.decode(EphemeralEnvelope.self, from: Data(#"{"node":"x","signal":{"alive":{"presence_version":3}}}"#.utf8))
        #expect(numbered.signal == .alive(presenceVersion: 3, intervalMilliseconds: nil, beat: nil), "acaba11's heartbeat, without its interval")
        let current = EphemeralEnvelope(node: "x", signal: .alive(presenceVersion: 3, intervalMilliseconds: 5000, beat: 12))
        #expect(try VestnikJSON.decode(EphemeralEnvelope.self, from: VestnikJSON.encode(current)) == current)
        let old = #"{"node":"x","signal":{"presence":{"user_id":"\#(alice)","online":true}}}"#
        let presence = try VestnikJSON.decode(EphemeralEnvelope.self, from: Data(old.utf8))
        #expect(presence.signal == .presence(userID: alice, online: true, version: nil))
        let users = (0..<SyncService.rosterPartSize).map { _ in UserID.random() }
        let roster = EphemeralEnvelope(
            node: UUID().uuidString.lowercased(),
            signal: .roster(version: .max, part: 9_999, parts: 10_000, users: users))
        let bytes = try VestnikJSON.encode(roster).count
        #expect(bytes < 8000, "PostgreSQL refuses NOTIFY payloads of 8000 bytes or more (was \(bytes))")
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
        #expect(await hub.setRemotePresence(alice, online: true, version: 1, node: "b") == nil)
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

    @Test("a node forgets silent nodes only while it hears its own heartbeat (its listener may be the one down)")
    func ownListenerDown() async throws {
        let env = try await TestEnvironment()
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let alice = UserID.random()
        _ = await hub.heardFrom(node: "b", version: 0, interval: .milliseconds(100))
        let online = await hub.setRemotePresence(alice, online: true, version: 1, node: "b")
        #expect(online?.online == true)
        try await Task.sleep(for: .milliseconds(400))
        #expect(await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10)).isEmpty, "own heartbeat never heard")
        #expect(await hub.presence(of: alice).online)
        await hub.heardOwnHeartbeat(beat: await hub.nextHeartbeat().beat)
        let gone = await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10))
        #expect(gone.map(\.userID) == [alice] && gone.first?.online == false)

        // Node c is heard just before this node sends a heartbeat, whose echo is handed over late
        // (a backlog in the listener, or the listener down): c's silence since says nothing.
        let carol = UserID.random()
        _ = await hub.heardFrom(node: "c", version: 0, interval: .milliseconds(100))
        _ = await hub.setRemotePresence(carol, online: true, version: 1, node: "c")
        let beat = await hub.nextHeartbeat().beat
        try await Task.sleep(for: .milliseconds(400))
        await hub.heardOwnHeartbeat(beat: beat)
        #expect(await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10)).isEmpty, "judged when the echoed heartbeat was sent")
        await hub.heardOwnHeartbeat(beat: 999)
        #expect(await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10)).isEmpty, "a heartbeat this node never sent proves nothing")
        // The listener restarts: c's silence counts from then, not from before the outage.
        await hub.listenerRestarted()
        await hub.heardOwnHeartbeat(beat: await hub.nextHeartbeat().beat)
        #expect(await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10)).isEmpty, "silence counts from the listener's restart")
        #expect(await hub.presence(of: carol).online)
        try await Task.sleep(for: .milliseconds(400))
        await hub.heardOwnHeartbeat(beat: await hub.nextHeartbeat().beat)
        #expect(await hub.forgetSilentNodes(ownSilenceLimit: .seconds(10)).map(\.userID) == [carol], "silent past its limit when this node sent a heartbeat that came back")
    }
}
