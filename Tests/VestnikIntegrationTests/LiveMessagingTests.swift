import Foundation
import Testing
import VestnikAPI
import VestnikKit
import VestnikModel

@Suite(.timeLimit(.minutes(2)))
struct LiveMessagingTests {
    @Test("two users chat live: message, typing, reply, reaction, edit, delete, receipts")
    func twoUsersChat() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice", name: "Alice Smirnova")
        let (bob, bobUser) = try await server.client("bob", name: "Bob Ivanov")
        let (bobEvents, bobTask) = EventCollector.start(bob.stream())
        defer { bobTask.cancel() }
        #expect(await bobEvents.wait { await $0.readyCount == 1 })

        let chat = try await alice.createGroup(title: "Project", members: [bobUser.id]).chat
        try await alice.sendTyping(chatID: chat.id)
        let hello = try await alice.sendMessage(chatID: chat.id, text: "Hello @bob")
        #expect(hello.mentions == [.user(bobUser.id)])
        #expect(await bobEvents.wait { await $0.messagesCreated.contains { $0.id == hello.id } })
        #expect(await bobEvents.wait { await $0.ephemeral.contains { if case .typing(chat.id, _) = $0 { true } else { false } } })

        let receipt = try await bob.markRead(chatID: chat.id, messageID: hello.id)
        #expect(receipt.readSeq == hello.chatSeq && receipt.unreadCount == 0)
        let reply = try await bob.sendMessage(chatID: chat.id, text: "Hi!", replyTo: hello.id)
        #expect(reply.replyTo == hello.id)
        _ = try await alice.addReaction(messageID: reply.id, emoji: "👍")
        _ = try await alice.editMessage(hello.id, text: "Hello @bob, edited")
        #expect(try await alice.readBy(messageID: hello.id).users == [bobUser.id])
        _ = try await alice.deleteMessage(hello.id)

        #expect(await bobEvents.wait { collector in
            let types = await collector.events.map(\.event.type)
            return types.contains("reactions.changed") && types.contains("message.edited") && types.contains("message.deleted")
                && types.contains("receipt.updated") && types.contains("chat.created")
        })
        let history = try await bob.history(chatID: chat.id)
        #expect(history.messages.map(\.id) == [hello.id, reply.id])
        #expect(history.messages[0].isDeleted && history.messages[0].text.isEmpty)
        #expect(history.messages[1].reactions.first?.emoji == "👍")
        let chats = try await bob.chats()
        #expect(chats.chats.first?.chat.id == chat.id)
        #expect(chats.chats.first?.lastMessage?.id == reply.id)
        // Positions are strictly increasing: in order, no duplicates.
        let seqs = await bobEvents.events.map(\.seq.value)
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
    }

    @Test("a client reconnecting with its position gets every missed event exactly once")
    func reconnectWithPosition() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        let chat = try await alice.createGroup(title: "G", members: [bobUser.id]).chat

        let (first, firstTask) = EventCollector.start(bob.stream())
        #expect(await first.wait { await $0.readyCount == 1 })
        _ = try await alice.sendMessage(chatID: chat.id, text: "before")
        #expect(await first.wait { await $0.messagesCreated.count == 1 })
        firstTask.cancel()
        let position = try #require(await first.lastSeq)

        var missed: [MessageID] = []
        for i in 0..<30 { missed.append(try await alice.sendMessage(chatID: chat.id, text: "missed \(i)").id) }

        let (second, secondTask) = EventCollector.start(bob.stream(since: position))
        defer { secondTask.cancel() }
        #expect(await second.wait { await $0.messagesCreated.count >= 30 })
        let live = try await alice.sendMessage(chatID: chat.id, text: "live")
        #expect(await second.wait { await $0.messagesCreated.count == 31 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(await second.messagesCreated.map(\.id) == missed + [live.id])
        #expect(await second.events.allSatisfy { $0.seq > position })

        // The HTTP catch-up returns the same events from the same position.
        let page = try await bob.events(since: position)
        let created = page.events.compactMap { if case .messageCreated(let m) = $0.event { m.id } else { nil } }
        #expect(created == missed + [live.id])
        #expect(page.next == page.events.last?.seq)
    }

    @Test("concurrent senders on several connections: every client sees every message once, in the same order")
    func concurrentSenders() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        var clients: [(VestnikClient, User)] = []
        for i in 0..<5 { clients.append(try await server.client("user\(i)")) }
        let chat = try await clients[0].0.createGroup(title: "Busy", members: clients.dropFirst().map(\.1.id)).chat
        var collectors: [(EventCollector, Task<Void, Never>)] = []
        for (client, _) in clients {
            let started = EventCollector.start(client.stream())
            collectors.append(started)
            #expect(await started.0.wait { await $0.readyCount == 1 })
        }
        defer { collectors.forEach { $0.1.cancel() } }
        let perSender = 20
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, (client, _)) in clients.enumerated() {
                group.addTask {
                    for i in 0..<perSender { _ = try await client.sendMessage(chatID: chat.id, text: "s\(index) m\(i)") }
                }
            }
            try await group.waitForAll()
        }
        let total = clients.count * perSender
        var orders: [[MessageID]] = []
        for (collector, _) in collectors {
            #expect(await collector.wait { await $0.messagesCreated.count >= total })
            orders.append(await collector.messagesCreated.map(\.id))
        }
        #expect(orders.allSatisfy { $0.count == total })
        #expect(Set(orders.map { $0.map(\.description).joined() }).count == 1)
        let history = try await clients[1].0.history(chatID: chat.id, limit: 200)
        #expect(history.messages.map(\.chatSeq) == Array(1...Int64(total)))
        #expect(history.messages.map(\.id) == orders[0])
    }

    @Test("a send retried with the same client_message_id returns the original message")
    func idempotentRetry() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let chat = try await alice.openNotesChat().chat
        let first = try await alice.sendMessage(chatID: chat.id, text: "exactly once", clientMessageID: "retry-1")
        let second = try await alice.sendMessage(chatID: chat.id, text: "exactly once", clientMessageID: "retry-1")
        #expect(first == second)
        #expect(try await alice.history(chatID: chat.id).messages.count == 1)
    }

    @Test("a position older than the log keeps gets resync_required")
    func resyncRequired() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let chat = try await alice.openNotesChat().chat
        for i in 0..<3 { _ = try await alice.sendMessage(chatID: chat.id, text: "\(i)") }
        // Everything up to now ages out.
        try await Task.sleep(for: .milliseconds(20))
        // In batches of two, as many as it takes.
        let head = try await server.services.context.store.headSeq()
        #expect(try await server.services.sync.prune(olderThan: 0.001, batch: 2) == Int(head.value))
        #expect(try await server.services.context.store.read { try await $0.oldestRetainedSeq() } == EventSeq(head.value + 1))
        let (collector, task) = EventCollector.start(alice.stream(since: EventSeq(1)))
        defer { task.cancel() }
        #expect(await collector.wait { await $0.resyncs >= 1 })
        #expect(await collector.wait { await $0.readyCount >= 1 })
        await #expect(throws: VestnikClientError.self) { _ = try await alice.events(since: EventSeq(1)) }
        // After a resync the stream continues live.
        let live = try await alice.sendMessage(chatID: chat.id, text: "after resync")
        #expect(await collector.wait { await $0.messagesCreated.contains { $0.id == live.id } })
    }

    @Test("revoking a session ends its stream; blocked users are cut off")
    func sessionRevocation() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, aliceUser) = try await server.client("alice")
        let (collector, task) = EventCollector.start(alice.stream())
        defer { task.cancel() }
        #expect(await collector.wait { await $0.readyCount == 1 })
        _ = try await server.services.accounts.setBlocked(true, user: aliceUser.id, as: .localAdmin)
        #expect(await collector.wait { await $0.failure != nil })
        await #expect(throws: VestnikClientError.self) { _ = try await alice.me() }
    }

    @Test("presence: a user with an open stream is online to their contacts")
    func presence() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        _ = try await alice.openPersonalChat(with: bobUser.id)
        let (aliceEvents, aliceTask) = EventCollector.start(alice.stream())
        defer { aliceTask.cancel() }
        #expect(await aliceEvents.wait { await $0.readyCount == 1 })
        #expect(try await alice.user(bobUser.id).presence.online == false)
        let (_, bobTask) = EventCollector.start(bob.stream())
        #expect(await aliceEvents.wait { await $0.ephemeral.contains { if case .presenceChanged(let p) = $0 { p.userID == bobUser.id && p.online } else { false } } })
        #expect(try await alice.user(bobUser.id).presence.online)
        bobTask.cancel()
        #expect(await aliceEvents.wait { await $0.ephemeral.contains { if case .presenceChanged(let p) = $0 { p.userID == bobUser.id && !p.online } else { false } } })
    }
}
