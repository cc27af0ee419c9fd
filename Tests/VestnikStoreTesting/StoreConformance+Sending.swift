import Foundation
import Testing
import VestnikCore
import VestnikModel

/// The calls every send makes, which an adapter may answer in fewer round trips than the
/// composed defaults (the PostgreSQL adapter does): they must mean exactly what the separate
/// calls mean.
extension StoreConformance {
    @Sendable package static func sending(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice"))
        let bob = try await insertUser(store, makeUser("bob"))
        let carol = try await insertUser(store, makeUser("carol"))
        let chat = makeChat(.group, by: alice.id)
        try await insertChat(store, chat, members: [alice.id, bob.id])

        // Who may send, and what a send learns about its chat.
        #expect(try await store.write { try await $0.sendingContext(chat: chat.id, sender: carol.id, clientMessageID: nil) } == nil)
        #expect(try await store.write { try await $0.sendingContext(chat: .random(), sender: alice.id, clientMessageID: nil) } == nil)
        let context = try #require(try await store.write { try await $0.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: "c-1") })
        #expect(context.chat == chat)
        #expect(context.member.userID == bob.id && context.member.role == .member)
        #expect(Set(context.memberIDs) == [alice.id, bob.id] && context.memberIDs.count == 2)
        #expect(context.existing == nil)

        // The combined insert: chat row, message with its version, reader position, event.
        func send(_ text: String, clientID: String?, audience: [UserID]) async throws -> (Message, EventSeq) {
            try await store.write { tx in
                guard let context = try await tx.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: clientID) else {
                    throw StoreError.backend("bob cannot send")
                }
                var updated = context.chat
                updated.lastMessageSeq += 1
                updated.lastActivityAt = Date.millisecondNow()
                let message = Message(
                    id: .random(), chatID: chat.id, chatSeq: updated.lastMessageSeq, senderID: bob.id, text: text,
                    createdAt: updated.lastActivityAt, clientMessageID: clientID)
                let event = ServerEvent.messageCreated(message)
                let entry = LogEntry(event: event, payload: try VestnikJSON.encode(event), audience: EventAudience(audience), at: message.createdAt)
                let seq = try await tx.insertMessage(message, updating: updated, readBy: bob.id, announcing: entry)
                return (message, seq)
            }
        }
        let head = try await store.headSeq()
        // A recipient set the log has not seen yet, then the same set again.
        let (first, firstSeq) = try await send("первое «сообщение»", clientID: "c-1", audience: [alice.id, bob.id])
        let (second, secondSeq) = try await send("second", clientID: nil, audience: [bob.id, alice.id])
        #expect(firstSeq == EventSeq(head.value + 1) && secondSeq == EventSeq(head.value + 2))
        #expect(try await store.headSeq() == secondSeq)
        let stored = try #require(try await store.read { try await $0.chat(chat.id) })
        #expect(stored.lastMessageSeq == 2)
        #expect(try await store.read { try await $0.message(first.id) }?.text == "первое «сообщение»")
        #expect(try await store.read { try await $0.message(chat: chat.id, chatSeq: 2) }?.id == second.id)
        #expect(try await store.read { try await $0.member(bob.id, of: chat.id) }?.readSeq == 2)
        #expect(try await store.read { try await $0.member(alice.id, of: chat.id) }?.readSeq == 0)
        for user in [alice.id, bob.id] {
            let events = try await store.read { try await $0.events(for: user, after: head, limit: 10) }
            #expect(events.map(\.seq) == [firstSeq, secondSeq])
            let decoded = try events.map { try VestnikJSON.decode(ServerEvent.self, from: $0.payload) }
            #expect(decoded == [.messageCreated(first), .messageCreated(second)])
        }
        #expect(try await store.read { try await $0.events(for: carol.id, after: head, limit: 10) }.isEmpty)
        let committed = try await store.committedEvents(after: head, through: secondSeq, limit: 10)
        #expect(committed.map(\.seq) == [firstSeq, secondSeq])
        #expect(committed.allSatisfy { Set($0.recipients) == [alice.id, bob.id] })

        // A retry finds the first send; a duplicate client id changes nothing.
        let retry = try #require(try await store.write { try await $0.sendingContext(chat: chat.id, sender: bob.id, clientMessageID: "c-1") })
        #expect(retry.existing?.id == first.id)
        #expect(retry.chat.lastMessageSeq == 2)
        // Another sender's message with the same client id is not a retry of this sender's.
        let otherSender = try #require(try await store.write { try await $0.sendingContext(chat: chat.id, sender: alice.id, clientMessageID: "c-1") })
        #expect(otherSender.existing == nil && otherSender.member.userID == alice.id && Set(otherSender.memberIDs) == [alice.id, bob.id])
        do {
            _ = try await send("again", clientID: "c-1", audience: [alice.id, bob.id])
            Issue.record("a duplicate client message id was stored")
        } catch StoreError.duplicate(let what) {
            #expect(what == "client_message_id")
        }
        #expect(try await store.headSeq() == secondSeq)
        #expect(try await store.read { try await $0.chat(chat.id) }?.lastMessageSeq == 2)

        // A chat with a bot member says so. A chat without may say either by the contract; both
        // adapters know, so that every send need not look for bots.
        let withoutBot = try #require(try await store.write { try await $0.sendingContext(chat: chat.id, sender: alice.id, clientMessageID: nil) })
        #expect(!withoutBot.mayHaveBots)
        var botDraft = makeUser("bot-sending-0001", name: "Helper")
        botDraft.kind = .botx
        let botUser = botDraft
        try await store.write { tx in
            try await tx.insertUser(UserRecord(user: botUser, passwordHash: nil), searchText: "helper")
            try await tx.insertBot(
                BotRecord(
                    id: botUser.id, url: "http://127.0.0.1:8001", sealedSecret: Data([1]), allowedData: .all, enabled: true, description: "",
                    status: nil, statusAt: nil, commands: [], createdAt: Date.millisecondNow()))
            try await tx.insertMember(ChatMember(userID: botUser.id, role: .member, joinedAt: Date.millisecondNow(), readSeq: 0), into: chat.id)
        }
        let withBot = try #require(try await store.write { try await $0.sendingContext(chat: chat.id, sender: alice.id, clientMessageID: nil) })
        #expect(withBot.mayHaveBots)
        #expect(Set(withBot.memberIDs) == [alice.id, bob.id, botUser.id])
    }

    @Sendable package static func authentication(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice"))
        let now = Date.millisecondNow()
        let session = Session(id: .random(), userID: alice.id, deviceName: "phone", createdAt: now, lastSeenAt: now, expiresAt: now + 3600)
        let hash = SessionToken.hash("token-auth")
        try await store.write { tx in try await tx.insertSession(SessionRecord(session: session, tokenHash: hash)) }
        let found = try #require(try await store.authenticationRecord(tokenHash: hash))
        #expect(found.session.session == session && found.session.tokenHash == hash && !found.userBlocked)
        #expect(try await store.authenticationRecord(tokenHash: SessionToken.hash("other")) == nil)
        var blocked = alice
        blocked.isBlocked = true
        let blockedUser = blocked
        try await store.write { tx in try await tx.updateUser(blockedUser, searchText: "alice") }
        #expect(try await store.authenticationRecord(tokenHash: hash)?.userBlocked == true)
    }
}
