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

        // Concurrent senders on every node; node 2 is killed while they send.
        let acked = AckLog()
        let killed = nodes[2]
        let fallbackURL = nodes[0].url
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var sender = client
                    for i in 0..<25 {
                        do {
                            await acked.append(try await sender.sendMessage(chatID: chat.id, text: "n\(index)-\(i)", clientMessageID: "n\(index)-\(i)"))
                        } catch {
                            // The node died: retry the same send (same idempotency key) on node 0.
                            sender = VestnikClient(serverURL: fallbackURL, token: client.token, configuration: .init(retry: .none))
                            await acked.append(try await sender.sendMessage(chatID: chat.id, text: "n\(index)-\(i)", clientMessageID: "n\(index)-\(i)"))
                        }
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(300))
                killed.kill9()
            }
            try await group.waitForAll()
        }

        // The killed node's clients resume on node 0 from their last position.
        var resumed: [Int: (EventCollector, Task<Void, Never>)] = [:]
        for index in clients.indices where index % 3 == 2 {
            collectors[index].1.cancel()
            let position = await collectors[index].0.lastSeq
            let moved = VestnikClient(serverURL: nodes[0].url, token: clients[index].token)
            resumed[index] = EventCollector.start(moved.stream(since: position, configuration: fastReconnect))
        }
        defer {
            collectors.forEach { $0.1.cancel() }
            resumed.values.forEach { $0.1.cancel() }
        }

        let total = await acked.messages.count
        #expect(total == 6 * 25)
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
    }
}
