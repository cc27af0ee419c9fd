import Foundation
import Logging
import Testing
import VestnikCore
import VestnikModel

@Suite(.timeLimit(.minutes(1))) struct EventHubTests {
    @Test("events published out of order are delivered in position order, gaps filled from the store", .timeLimit(.minutes(1)))
    func orderedDelivery() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        // Write three events directly (as another process would) without publishing them.
        var committed: [CommittedEvent] = []
        for i in 0..<3 {
            let event = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: Int64(i))
            let payload = try VestnikJSON.encode(event)
            let seq = try await env.store.write { try await $0.appendEvent(event, payload: payload, recipients: [user], at: Date.millisecondNow()) }
            committed.append(CommittedEvent(seq: seq, event: event, recipients: [user], payload: payload))
        }
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (subscription, _) = await hub.subscribe(user: user, session: nil)
        // Only the last is published: the hub must fetch 1 and 2 from the store first.
        await hub.publish([committed[2]])
        await hub.publish([committed[0]])  // late duplicate: ignored
        var received: [Int64] = []
        for await delivery in subscription.stream {
            if case .durable(let seq, _, _) = delivery { received.append(seq.value) }
            if received.count == 3 { break }
        }
        #expect(received == [1, 2, 3])
        #expect(await hub.position == EventSeq(3))
    }

    @Test("a gap the store cannot fill yet holds later events back instead of skipping it", .timeLimit(.minutes(1)))
    func gapNotYetReadable() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (subscription, _) = await hub.subscribe(user: user, session: nil)
        // Position 2 is published before position 1 is readable (as when a commit on another
        // node is not visible yet to the connection that fills the gap).
        let first = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: 1)
        let second = ServerEvent.receiptUpdated(chatID: .random(), userID: user, readSeq: 2)
        await hub.publish([CommittedEvent(seq: EventSeq(2), event: second, recipients: [user], payload: try VestnikJSON.encode(second))])
        #expect(await hub.position == .zero, "position 1 must not be skipped")
        // Now position 1 becomes readable, then position 2 with it.
        for event in [first, second] {
            _ = try await env.store.write { try await $0.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [user], at: Date.millisecondNow()) }
        }
        await hub.catchUp()
        var received: [Int64] = []
        for await delivery in subscription.stream {
            if case .durable(let seq, _, _) = delivery { received.append(seq.value) }
            if received.count == 2 { break }
        }
        #expect(received == [1, 2])
        #expect(await hub.position == EventSeq(2))
    }

    @Test("catch-up picks up events written by another process")
    func foreignWrites() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (subscription, _) = await hub.subscribe(user: user, session: nil)
        let event = ServerEvent.sessionRevoked(sessionID: .random())
        _ = try await env.store.write { try await $0.appendEvent(event, payload: try VestnikJSON.encode(event), recipients: [user], at: Date.millisecondNow()) }
        await hub.catchUp()
        var iterator = subscription.stream.makeAsyncIterator()
        guard case .durable(let seq, let received, _) = await iterator.next() else {
            Issue.record("no delivery")
            return
        }
        #expect(seq == EventSeq(1) && received == event)
    }

    @Test("a full buffer drops ephemeral events but closes the subscriber on durable ones", .timeLimit(.minutes(1)))
    func slowConsumer() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        let hub = EventHub(store: env.store, startingAfter: .zero, bufferLimit: 5, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (subscription, presence) = await hub.subscribe(user: user, session: nil)
        guard case .cameOnline = presence else {
            Issue.record("first subscription should bring the user online")
            return
        }
        for _ in 0..<10 { await hub.publishEphemeral(.typing(chatID: .random(), userID: .random()), to: [user]) }
        #expect(subscription.closeReason == nil)
        let events = (1...3).map { seq in
            CommittedEvent(seq: EventSeq(Int64(seq)), event: .sessionRevoked(sessionID: .random()), recipients: [user], payload: Data("{}".utf8))
        }
        await hub.publish(events)
        #expect(subscription.closeReason == "slow_consumer")
        var count = 0
        for await _ in subscription.stream { count += 1 }
        #expect(count == 5)
        #expect(await hub.presence(of: user).online)
        _ = await hub.unsubscribe(subscription)
        #expect(await hub.presence(of: user).online == false)
    }

    @Test("deliveries queued while the consumer is busy arrive as one batch, in order; a waiting consumer can be cancelled", .timeLimit(.minutes(1)))
    func batchedDelivery() async throws {
        let env = try await TestEnvironment()
        let user = UserID.random()
        let hub = EventHub(store: env.store, startingAfter: .zero, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let (subscription, _) = await hub.subscribe(user: user, session: nil)
        let events = (1...4).map { seq in
            CommittedEvent(seq: EventSeq(Int64(seq)), event: .sessionRevoked(sessionID: .random()), recipients: [user], payload: Data("{}".utf8))
        }
        await hub.publish(events)
        let batch = await subscription.nextBatch()
        #expect(batch.compactMap { delivery -> Int64? in if case .durable(let seq, _, _) = delivery { seq.value } else { nil } } == [1, 2, 3, 4])
        // Nothing queued now: a waiting consumer wakes with an empty batch when cancelled.
        let waiting = Task { await subscription.nextBatch() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value.isEmpty)
        #expect(subscription.closeReason == nil)
        // A delivery published after the consumer started waiting is handed over directly.
        let next = Task { await subscription.nextBatch() }
        try await Task.sleep(for: .milliseconds(50))
        await hub.publish([CommittedEvent(seq: EventSeq(5), event: .sessionRevoked(sessionID: .random()), recipients: [user], payload: Data("{}".utf8))])
        #expect(await next.value.count == 1)
        _ = await hub.unsubscribe(subscription)
        #expect(await subscription.nextBatch().isEmpty)
    }

    @Test("services publish only committed events, to the chat's members")
    func servicePublishing() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        let carol = try await env.user("carol")
        let chat = try await env.group("G", by: alice, members: [bob])
        let bobStream = await env.services.sync.connect(bob)
        let carolStream = await env.services.sync.connect(carol)
        _ = try await env.send("hello", to: chat, as: alice)
        _ = await errorCode { _ = try await env.send("", to: chat, as: alice) }
        var iterator = bobStream.stream.makeAsyncIterator()
        var sawMessage = false
        while let delivery = await iterator.next() {
            if case .durable(_, .messageCreated(let message), _) = delivery {
                #expect(message.text == "hello")
                sawMessage = true
                break
            }
        }
        #expect(sawMessage)
        await env.services.sync.disconnect(bobStream)
        await env.services.sync.disconnect(carolStream)
        var carolDurable = 0
        for await delivery in carolStream.stream {
            if case .durable = delivery { carolDurable += 1 }
        }
        #expect(carolDurable == 0)
    }
}

@Suite struct WireFormatTests {
    @Test("keys are snake_case with acronyms as one word, and round-trip", arguments: [
        ("chatID", "chat_id"), ("userIDs", "user_ids"), ("clientMessageID", "client_message_id"), ("replyTo", "reply_to"),
        ("id", "id"), ("hasMoreBefore", "has_more_before"),
    ])
    func snakeCase(_ pair: (String, String)) {
        #expect(VestnikJSON.snakeCase(pair.0) == pair.1)
        #expect(VestnikJSON.camelCase(pair.1) == pair.0)
    }

    @Test("dates are written with exactly millisecond precision and read back equal")
    func dates() throws {
        for ms: Int64 in [0, 1, 999, 1_764_388_882_123, 1_764_388_882_999, 1_764_388_882_000] {
            let date = Date(millisecondsSince1970: ms)
            let text = VestnikJSON.formatDate(date)
            #expect(VestnikJSON.parseDate(text) == date, "\(text)")
        }
        #expect(VestnikJSON.formatDate(Date(millisecondsSince1970: 1_764_388_882_007)) == "2025-11-29T04:01:22.007Z")
    }

    @Test("every event kind encodes with its type and decodes back")
    func eventsRoundTrip() throws {
        let now = Date.millisecondNow()
        let chat = Chat(id: .random(), kind: .group, title: "T", description: "", createdBy: .random(), createdAt: now, memberCount: 1, lastMessageSeq: 0, lastActivityAt: now)
        let message = Message(id: .random(), chatID: chat.id, chatSeq: 1, senderID: .random(), text: "hi", mentions: [.all, .user(.random())], createdAt: now)
        let events: [ServerEvent] = [
            .messageCreated(message), .messageEdited(message), .messageDeleted(message),
            .reactionsChanged(chatID: chat.id, messageID: message.id, reactions: [ReactionSummary(emoji: "👍", count: 1, users: [.random()])]),
            .messagePinned(chatID: chat.id, messageID: message.id, by: .random()), .messageUnpinned(chatID: chat.id, messageID: message.id, by: .random()),
            .receiptUpdated(chatID: chat.id, userID: .random(), readSeq: 3), .chatCreated(chat), .chatUpdated(chat),
            .membersJoined(chat: chat, members: [ChatMember(userID: .random(), role: .member, joinedAt: now, readSeq: 0)], by: .random()),
            .memberLeft(chat: chat, userID: .random(), by: .random()),
            .memberRoleChanged(chatID: chat.id, userID: .random(), role: .admin, by: .random()),
            .sessionRevoked(sessionID: .random()), .typing(chatID: chat.id, userID: .random()),
            .presenceChanged(Presence(userID: .random(), online: true, lastSeenAt: nil)),
        ]
        for event in events {
            let data = try VestnikJSON.encode(event)
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            #expect(object?["type"] as? String == event.type)
            #expect(try VestnikJSON.decode(ServerEvent.self, from: data) == event)
        }
    }
}

@Suite struct IdentifierTests {
    @Test("ids format lowercase and parse either case, agreeing with Foundation")
    func roundTrip() {
        for _ in 0..<200 {
            let uuid = UUID()
            let id = UserID(uuid)
            #expect(id.description == uuid.uuidString.lowercased())
            #expect(UserID(uuid.uuidString) == id)
            #expect(UserID(id.description) == id)
        }
        for bad in ["", "not-a-uuid", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-4266141740000",
                    "123e4567+e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400g", "пррр",
                    "123e45678-e89-12d3-a456-426614174000", "{23e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-4266141740é"] {
            #expect(UserID(bad) == nil, "\(bad)")
        }
    }

    @Test("ids order like their text, and an audience is the same whatever the order of its recipients")
    func orderAndAudience() {
        let ids = (0..<300).map { _ in UserID.random() } + [UserID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255)))]
        #expect(ids.sorted().map(\.description) == ids.map(\.description).sorted())
        let some = Array(ids.prefix(20))
        #expect(EventAudience(some) == EventAudience(some.reversed() + some.prefix(3)))
        #expect(EventAudience(some).members.count == 20)
        #expect(EventAudience(some).digest.count == 32)
        #expect(EventAudience(some) != EventAudience(some.dropLast()))
        #expect(EventAudience([]).digest != EventAudience([some[0]]).digest)
    }
}
