import Foundation
import Testing
import VestnikAPI
import VestnikKit
import VestnikModel

/// Three `vestnik serve` nodes on one PostgreSQL database (runs only against PostgreSQL).
@Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: TestBackend.postgresServerURL != nil, "needs VESTNIK_TEST_BACKEND=postgres"))
struct ClusterTests {
    @Test("clients on three nodes see every message once, in one order; a node killed mid-run loses nothing")
    func threeNodes() async throws {
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-cluster-\(UUID().uuidString)").path
        let backend = try await TestBackend.serverArguments()
        let logins = (0..<6).map { "node\($0)" }
        for login in logins {
            let added = try binary.run(["admin", "user", "add", "--login", login, "--name", login, "--password-stdin", "--data-dir", data] + backend, stdin: "cluster-pass-\(login)\n")
            #expect(added.status == 0, "\(added.error)")
        }
        var nodes: [RunningServer] = []
        for i in 0..<3 { nodes.append(try await binary.startServer(dataDirectory: data + "/node\(i)", arguments: backend)) }
        defer { nodes.forEach { $0.kill9() } }

        // Two users per node.
        var clients: [VestnikClient] = []
        var users: [User] = []
        for (index, login) in logins.enumerated() {
            let client = VestnikClient(serverURL: nodes[index % 3].url, token: nil, configuration: .init(retry: .none))
            users.append(try await client.login(login: login, password: "cluster-pass-\(login)", deviceName: "cluster").user)
            clients.append(client)
        }
        let chat = try await clients[0].createGroup(title: "Cluster", members: users.dropFirst().map(\.id)).chat
        let fastReconnect = RealtimeConfiguration(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200))
        var collectors: [(EventCollector, Task<Void, Never>)] = []
        for client in clients {
            let started = EventCollector.start(client.stream(configuration: fastReconnect))
            #expect(await started.0.wait { await $0.readyCount == 1 })
            collectors.append(started)
        }

        // Typing and presence cross nodes: user 0 is on node 0, user 1 on node 1.
        try await clients[0].sendTyping(chatID: chat.id)
        #expect(await collectors[1].0.wait {
            await $0.ephemeral.contains { if case .typing(chat.id, users[0].id) = $0 { true } else { false } }
        }, "typing on node 0 reaches a client on node 1")
        let seenOnline = await waitUntil(timeout: .seconds(10)) { (try? await clients[0].user(users[1].id).presence.online) == true }
        #expect(seenOnline, "a user connected to node 1 is online when asked on node 0")

        // Concurrent senders on every node. The sender whose message is the fifth of all to be
        // acknowledged kills node 2 there and then: its senders fail over to node 0 mid-run, and
        // its clients' streams move to node 0 from their last position while the others keep
        // sending.
        let acked = AckLog()
        let total = 6 * 25
        let killed = nodes[2]
        let fallbackURL = nodes[0].url
        let streamsBeforeKill = collectors
        let failover = Task { () -> (ackedAtKill: Int, resumed: [Int: (EventCollector, Task<Void, Never>)]) in
            while !Task.isCancelled, await acked.messages.count < total / 5 { try? await Task.sleep(for: .milliseconds(2)) }
            let ackedAtKill = await acked.messages.count
            var resumed: [Int: (EventCollector, Task<Void, Never>)] = [:]
            for index in clients.indices where index % 3 == 2 {
                streamsBeforeKill[index].1.cancel()
                await streamsBeforeKill[index].1.value  // nothing more is recorded after the position is read
                let position = await streamsBeforeKill[index].0.lastSeq
                let moved = VestnikClient(serverURL: fallbackURL, token: clients[index].token)
                resumed[index] = EventCollector.start(moved.stream(since: position, configuration: fastReconnect))
            }
            return (ackedAtKill, resumed)
        }
        defer { failover.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var sender = client
                    for i in 0..<25 {
                        do {
                            let count = await acked.append(try await sender.sendMessage(chatID: chat.id, text: "n\(index)-\(i)", clientMessageID: "n\(index)-\(i)"))
                            if count == total / 5 { killed.kill9() }
                        } catch {
                            // The node died: retry the same send (same idempotency key) on node 0.
                            await acked.failedOver()
                            sender = VestnikClient(serverURL: fallbackURL, token: client.token, configuration: .init(retry: .none))
                            _ = await acked.append(try await sender.sendMessage(chatID: chat.id, text: "n\(index)-\(i)", clientMessageID: "n\(index)-\(i)"))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let (ackedAtKill, resumed) = await failover.value
        #expect(ackedAtKill < total, "the node died while messages were still being sent")
        #expect(await acked.failovers > 0, "a sender on the killed node moved to another node")
        defer {
            collectors.forEach { $0.1.cancel() }
            resumed.values.forEach { $0.1.cancel() }
        }

        #expect(await acked.messages.count == total)
        var orders: [[MessageID]] = []
        for index in clients.indices {
            let first = collectors[index].0
            let second = resumed[index]?.0
            let complete = await waitUntil(timeout: .seconds(30)) {
                let count = await first.messagesCreated.count + (await second?.messagesCreated.count ?? 0)
                return count >= total
            }
            #expect(complete, "client \(index) did not see every message")
            let seqs = await first.events.map(\.seq) + (await second?.events.map(\.seq) ?? [])
            #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "client \(index): events out of order or duplicated")
            orders.append(await first.messagesCreated.map(\.id) + (await second?.messagesCreated.map(\.id) ?? []))
        }
        #expect(Set(orders.map { $0.map(\.description).joined(separator: ",") }).count == 1, "every client sees one order")
        #expect(Set(orders[0]) == Set(await acked.messages.map(\.id)))

        // Presence survives the crash for users connected to live nodes.
        #expect(try await clients[1].user(users[0].id).presence.online)

        // Read receipts cross nodes too: user 1 (node 1) reads; user 0 (node 0) is told.
        // On a fresh message of user 0's: a sender has read what they sent, so reading up to a
        // message at or before user 1's own last one would move nothing and log no receipt.
        let fresh = try await clients[0].sendMessage(chatID: chat.id, text: "read me", clientMessageID: "read-me")
        _ = try await clients[1].markRead(chatID: chat.id, messageID: fresh.id)
        #expect(await collectors[0].0.wait {
            await $0.events.contains { if case .receiptUpdated(chat.id, users[1].id, _) = $0.event { true } else { false } }
        }, "a read on node 1 reaches a client on node 0")
    }

    @Test("presence across nodes: a node started later learns who is online elsewhere; a killed node's users go offline for everyone")
    func presenceAcrossNodes() async throws {
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-presence-\(UUID().uuidString)").path
        let backend = try await TestBackend.serverArguments()
        for login in ["alice", "bob"] {
            let added = try binary.run(["admin", "user", "add", "--login", login, "--name", login, "--password-stdin", "--data-dir", data] + backend, stdin: "presence-pass-\(login)\n")
            #expect(added.status == 0, "\(added.error)")
        }
        // A short heartbeat: a node silent for three of them (1.5 s) counts as dead (shorter
        // would risk a loaded machine delaying a live node's heartbeat that long).
        let fast = ["VESTNIK_CLUSTER_HEARTBEAT_SECONDS": "0.5"]
        let bobsNode = try await binary.startServer(dataDirectory: data + "/bob", arguments: backend, environment: fast)
        defer { bobsNode.kill9() }
        let alicesNode = try await binary.startServer(dataDirectory: data + "/alice", arguments: backend, environment: fast)
        defer { alicesNode.kill9() }

        let bob = VestnikClient(serverURL: bobsNode.url, token: nil, configuration: .init(retry: .none))
        let bobUser = try await bob.login(login: "bob", password: "presence-pass-bob", deviceName: "presence").user
        let alice = VestnikClient(serverURL: alicesNode.url, token: nil, configuration: .init(retry: .none))
        let aliceUser = try await alice.login(login: "alice", password: "presence-pass-alice", deviceName: "presence").user
        _ = try await bob.createGroup(title: "Presence", members: [aliceUser.id])
        let bobsStream = EventCollector.start(bob.stream())
        defer { bobsStream.1.cancel() }
        #expect(await bobsStream.0.wait { await $0.readyCount == 1 })
        let alicesStream = EventCollector.start(alice.stream(configuration: RealtimeConfiguration(initialBackoff: .seconds(60), maxBackoff: .seconds(60))))
        defer { alicesStream.1.cancel() }
        #expect(await alicesStream.0.wait { await $0.readyCount == 1 })
        @Sendable func aliceOnline(_ event: ServerEvent, _ online: Bool) -> Bool {
            if case .presenceChanged(let presence) = event { presence.userID == aliceUser.id && presence.online == online } else { false }
        }
        #expect(await bobsStream.0.wait { await $0.ephemeral.contains { aliceOnline($0, true) } }, "bob is told alice came online on the other node")

        // A node started after alice connected was never told of her connection: it asks for
        // every node's roster when it starts listening.
        let lateNode = try await binary.startServer(dataDirectory: data + "/late", arguments: backend, environment: fast)
        defer { lateNode.kill9() }
        let bobOnLateNode = VestnikClient(serverURL: lateNode.url, token: bob.token, configuration: .init(retry: .none))
        #expect(await waitUntil(timeout: .seconds(10)) { (try? await bobOnLateNode.user(aliceUser.id).presence.online) == true },
                "the late node counts alice online")

        // Alice's node dies without a word: after three missed heartbeats she is offline, and
        // bob's open stream is told so (and was not told so before, while her node lived).
        let heardBeforeKill = await bobsStream.0.ephemeral.count
        #expect(!(await bobsStream.0.ephemeral.contains { aliceOnline($0, false) }), "alice was never offline while her node lived")
        alicesNode.kill9()
        #expect(await bobsStream.0.wait(timeout: .seconds(10)) { await $0.ephemeral.dropFirst(heardBeforeKill).contains { aliceOnline($0, false) } },
                "bob is told alice went offline when her node died")
        let seenOffline = try await bob.user(aliceUser.id).presence
        #expect(!seenOffline.online && seenOffline.lastSeenAt != nil)
        #expect(await waitUntil(timeout: .seconds(10)) { (try? await bobOnLateNode.user(aliceUser.id).presence.online) == false })
    }
}
