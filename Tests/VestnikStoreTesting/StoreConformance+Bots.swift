import Foundation
import Testing
import VestnikCore
import VestnikModel

extension StoreConformance {
    /// Bot registrations, bot members of a chat, user kinds.
    @Sendable package static func bots(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice"))
        var botDraft = makeUser("bot-0123456789ab", name: "Service desk")
        botDraft.kind = .botx
        let botUser = botDraft
        try await store.write { tx in try await tx.insertUser(UserRecord(user: botUser, passwordHash: nil), searchText: "service desk") }
        let now = Date.millisecondNow()
        let registered = BotRecord(
            id: botUser.id, url: "http://127.0.0.1:8001", sealedSecret: Data([0, 1, 2, 255]), allowedData: .all, enabled: true,
            description: "Tickets", status: nil, statusAt: nil, commands: [], createdAt: now)
        try await store.write { tx in try await tx.insertBot(registered) }
        #expect(try await store.read { try await $0.user(botUser.id) }?.user.kind == .botx)
        #expect(try await store.read { try await $0.user(alice.id) }?.user.kind == .user)
        #expect(try await store.read { try await $0.bot(botUser.id) } == registered)
        #expect(try await store.read { try await $0.bot(alice.id) } == nil)

        var changed = registered
        changed.commands = [BotCommand(body: "/echo", name: "/echo", description: "Echo «эхо»")]
        changed.status = "http 503"
        changed.statusAt = now
        changed.enabled = false
        changed.sealedSecret = Data(repeating: 7, count: 44)
        let updated = changed
        try await store.write { tx in try await tx.updateBot(updated) }
        #expect(try await store.read { try await $0.bots() } == [updated])

        let chat = makeChat(.group, by: alice.id)
        try await insertChat(store, chat, members: [alice.id, botUser.id])
        #expect(try await store.read { try await $0.botMembers(of: chat.id) }.map(\.id) == [botUser.id])
        let other = makeChat(.group, by: alice.id)
        try await insertChat(store, other, members: [alice.id])
        #expect(try await store.read { try await $0.botMembers(of: other.id) }.isEmpty)

        try await store.write { tx in try await tx.deleteBot(botUser.id) }
        #expect(try await store.read { try await $0.bot(botUser.id) } == nil)
        #expect(try await store.read { try await $0.user(botUser.id) } != nil, "the user row stays for history")
    }

    /// The bot outbox: due order, leases, busy bots skipped, reschedule, delete.
    @Sendable package static func botOutbox(_ store: any Store) async throws {
        let botA = UserID.random()
        let botB = UserID.random()
        let start = Date(millisecondsSince1970: Date.millisecondNow().millisecondsSince1970 - 10_000)
        func job(_ bot: UserID, _ offset: TimeInterval, _ body: String) -> BotJobRecord {
            let command = BotCommandJob(
                syncID: .random(), chatID: .random(), chatKind: .personal,
                sender: BotSender(userID: .random(), login: "alice", name: "Алиса", isAdmin: false, isCreator: true), body: body,
                data: .object(["camelCase": .int(1)]), metadata: .emptyObject, sourceSyncID: nil, attachments: [])
            return BotJobRecord(
                id: UUID(), botID: bot, job: .command(command), attempts: 0, nextAttemptAt: start.addingTimeInterval(offset),
                createdAt: start.addingTimeInterval(offset))
        }
        let a1 = job(botA, 0, "/one")
        let a2 = job(botA, 1, "/two")
        let b1 = job(botB, 2, "/three")
        let future = job(botB, 3600, "/later")
        try await store.write { tx in for j in [future, b1, a2, a1] { try await tx.enqueueBotJob(j) } }
        #expect(try await store.read { try await $0.pendingBotJobs(of: botA) } == 2)

        let now = Date.millisecondNow()
        let lease = now.addingTimeInterval(60)
        // At most one per bot: botA's second job waits, so another bot's job is not stuck behind it.
        let capped = try await store.write { tx in try await tx.claimBotJobs(now: now, leaseUntil: lease, limit: 10, perBot: 1, skipping: [botB]) }
        #expect(capped.map(\.id) == [a1.id], "the per-bot cap holds; busy bots are skipped")
        let claimed = [a1] + (try await store.write { tx in
            try await tx.claimBotJobs(now: now, leaseUntil: lease, limit: 10, perBot: 4, skipping: [botB])
        })
        #expect(claimed.map(\.id) == [a1.id, a2.id], "due jobs, oldest first, busy bots skipped")
        #expect(capped.first?.job == a1.job, "the job round-trips")
        let again = try await store.write { tx in try await tx.claimBotJobs(now: now, leaseUntil: lease, limit: 10, perBot: 4, skipping: []) }
        #expect(again.map(\.id) == [b1.id], "leased jobs are not claimed twice; future ones wait")

        try await store.write { tx in
            try await tx.deleteBotJob(a1.id)
            try await tx.rescheduleBotJob(a2.id, attempts: 1, at: start, error: "http 503")
        }
        let retried = try await store.write { tx in try await tx.claimBotJobs(now: now, leaseUntil: lease, limit: 10, perBot: 4, skipping: []) }
        #expect(retried.map(\.id) == [a2.id] && retried.first?.attempts == 1)
        #expect(try await store.read { try await $0.pendingBotJobs(of: botA) } == 1)
    }

    /// Message extras (buttons, metadata with bot-owned keys, recipients, files) round-trip;
    /// deleting a message clears them.
    @Sendable package static func messageExtras(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice"))
        let chat = makeChat(.group, by: alice.id)
        try await insertChat(store, chat, members: [alice.id])
        let message = try await appendMessage(store, chat: chat.id, from: alice.id, text: "plain")
        #expect(try await store.read { try await $0.message(message.id) }?.extras.isEmpty == true)
        let extras = MessageExtras(
            bubble: [[BotButton(command: "/choose", label: "Red", data: .object(["camelCase": .string("kept"), "snake_key": .null]), silent: true)]],
            keyboard: nil, metadata: .object(["fooBar": .array([.int(1), .double(2.5), .bool(true)])]), recipients: [alice.id],
            attachments: [Attachment(type: "document", fileName: "a.txt", mimeType: "text/plain", size: 2, data: "aGk=")], silentResponse: true,
            stealth: nil)
        #expect(try await store.write { tx in try await tx.setExtras(extras, of: message.id) })
        #expect(try await store.read { try await $0.message(message.id) }?.extras == extras)
        #expect(try await store.read { try await $0.messages(in: chat.id, .latest, limit: 10) }.first?.extras == extras)
        // Stealth settings and expiry.
        #expect(try await store.read { try await $0.stealth(of: chat.id) } == nil)
        let stealth = StealthSettings(burnIn: 60, expireIn: nil, disableWeb: true)
        try await store.write { tx in
            try await tx.setStealth(stealth, for: chat.id)
            try await tx.setExpiry(Date(millisecondsSince1970: 1000), of: message.id)
        }
        #expect(try await store.read { try await $0.stealth(of: chat.id) } == stealth)
        #expect(try await store.read { try await $0.expiredMessages(before: Date(millisecondsSince1970: 999), limit: 10) }.isEmpty)
        #expect(try await store.read { try await $0.expiredMessages(before: Date(millisecondsSince1970: 1000), limit: 10) } == [message.id])
        try await store.write { tx in try await tx.setStealth(nil, for: chat.id) }
        #expect(try await store.read { try await $0.stealth(of: chat.id) } == nil)
        try await store.write { tx in try await tx.markDeleted(message.id, at: Date.millisecondNow(), keepingRecipients: nil) }
        #expect(try await store.read { try await $0.message(message.id) }?.extras.isEmpty == true)
        // A message for some members keeps only its recipients as a tombstone.
        let addressed = try await appendMessage(store, chat: chat.id, from: alice.id, text: "for alice")
        try await store.write { tx in try await tx.markDeleted(addressed.id, at: Date.millisecondNow(), keepingRecipients: [alice.id]) }
        #expect(try await store.read { try await $0.message(addressed.id) }?.extras == MessageExtras(recipients: [alice.id]))
        #expect(try await store.read { try await $0.expiredMessages(before: Date(), limit: 10) }.isEmpty, "deletion ends the expiry")
    }

    /// Bot messages addressed to some members: a viewer's pages and unread count skip the others
    /// in the query itself, so a page is never empty while visible history remains.
    @Sendable package static func visibleHistory(_ store: any Store) async throws {
        let alice = try await insertUser(store, makeUser("alice")).id
        let bob = try await insertUser(store, makeUser("bob")).id
        let bot = try await insertUser(store, makeUser("bot-visible")).id
        let chat = makeChat(.group, by: alice)
        try await insertChat(store, chat, members: [alice, bob, bot])
        func hidden(_ text: String) async throws {
            let message = try await appendMessage(store, chat: chat.id, from: bot, text: text)
            #expect(try await store.write { tx in try await tx.setExtras(MessageExtras(recipients: [alice]), of: message.id) })
        }
        for i in 1...10 { try await hidden("for alice \(i)") }
        let shared = try await appendMessage(store, chat: chat.id, from: bot, text: "for everyone")
        for i in 11...20 { try await hidden("for alice \(i)") }
        func texts(_ direction: HistoryDirection, _ limit: Int, _ viewer: UserID?) async throws -> [String] {
            try await store.read { try await $0.messages(in: chat.id, direction, limit: limit, visibleTo: viewer) }.map(\.text)
        }
        #expect(try await texts(.latest, 5, bob) == ["for everyone"])
        #expect(try await texts(.before(21), 3, bob) == ["for everyone"])
        #expect(try await texts(.after(0), 3, bob) == ["for everyone"])
        #expect(try await texts(.latest, 3, alice) == ["for alice 18", "for alice 19", "for alice 20"])
        #expect(try await texts(.latest, 50, bot).count == 21, "the sender sees its own")
        #expect(try await texts(.latest, 50, nil).count == 21)
        #expect(try await store.read { try await $0.unreadCount(in: chat.id, for: bob, after: 0) } == 1)
        #expect(try await store.read { try await $0.unreadCount(in: chat.id, for: alice, after: 0) } == 21)
        #expect(try await store.read { try await $0.chatList(of: bob) }.first?.unreadCount == 1)
        #expect(try await store.read { try await $0.chatList(of: bob) }.first?.lastMessage?.text == "for everyone", "the newest message bob may see")
        #expect(try await store.read { try await $0.chatList(of: alice) }.first?.lastMessage?.text == "for alice 20")
        #expect(shared.chatSeq == 11)
    }
}
