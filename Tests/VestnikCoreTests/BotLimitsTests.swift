import Crypto
import Foundation
import Logging
import Testing
import VestnikCore
import VestnikModel
import VestnikStoreSQLite

/// Limits on what one bot can make the server store.
@Suite struct BotLimitsTests {
    static func services(limits: CoreLimits) async throws -> (Services, SQLiteStore) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let hub = EventHub(store: store, startingAfter: try await store.headSeq(), bufferLimit: 1000, logger: logger)
        let services = Services(
            context: CoreContext(store: store, hub: hub, limits: limits, logger: logger), hasher: .fastForTests,
            loginLimits: LoginLimits(failuresPerAccount: 3, attemptsPerAddress: 100, window: 60))
        return (services, store)
    }

    static func user(_ services: Services, _ login: String) async throws -> AuthenticatedSession {
        let (_, password) = try await services.accounts.createUser(NewAccount(login: login, displayName: login), password: nil, as: .localAdmin)
        let (token, _, _) = try await services.sessions.login(login: login, password: password, deviceName: "t", address: "127.0.0.1")
        return try await services.sessions.authenticate(token: token)
    }

    @Test("a bot's queue is capped: further deliveries are dropped, the users' sends still succeed")
    func outboxQuota() async throws {
        var limits = CoreLimits()
        limits.maxQueuedBotJobs = 2
        let (services, store) = try await Self.services(limits: limits)
        let (bot, _) = try await services.bots.register(name: "Down", url: "http://127.0.0.1:9", allowedData: .all, description: nil, as: .localAdmin)
        let alice = try await Self.user(services, "alice")
        let chat = try await services.chats.create(kind: .personal, title: nil, description: nil, members: [bot.user.id], as: alice).0.chat.id
        for i in 0..<4 { _ = try await services.messages.send(OutgoingMessage(text: "m\(i)"), to: chat, as: alice) }
        #expect(try await store.read { try await $0.pendingBotJobs(of: bot.user.id) } == 2)
        #expect(try await services.messages.history(in: chat, anchor: .latest, limit: 10, as: alice).messages.count == 4)
    }

    @Test("bot metadata, bubble and keyboard together are size-limited, on send and on edit")
    func extrasSizeLimit() async throws {
        var limits = CoreLimits()
        limits.maxBotExtrasBytes = 1024
        let (services, _) = try await Self.services(limits: limits)
        let (bot, _) = try await services.bots.register(name: "Big", url: "http://127.0.0.1:9", allowedData: .all, description: nil, as: .localAdmin)
        let alice = try await Self.user(services, "alice")
        let chat = try await services.chats.create(kind: .personal, title: nil, description: nil, members: [bot.user.id], as: alice).0.chat.id
        let big = JSONValue.string(String(repeating: "x", count: 2000))
        let code = await errorCode {
            _ = try await services.bots.send(
                BotOutgoing(syncID: .random(), text: "hi", mentions: [], extras: MessageExtras(metadata: big)), to: chat, as: bot.user.id)
        }
        #expect(code == "payload_too_large")
        let small = try await services.bots.send(
            BotOutgoing(syncID: .random(), text: "hi", mentions: [], extras: MessageExtras(metadata: .string("ok"))), to: chat, as: bot.user.id)
        let editCode = await errorCode {
            _ = try await services.bots.edit(
                small.id, text: nil, mentions: nil,
                change: { extras in
                    var extras = extras
                    extras.bubble = [[BotButton(command: "/x", label: "x", data: big, silent: false)]]
                    return extras
                }, as: bot.user.id)
        }
        #expect(editCode == "payload_too_large")
    }

    @Test("jobs released at shutdown are due again at once, their attempts unchanged")
    func releasedJobsComeBack() async throws {
        let (services, _) = try await Self.services(limits: CoreLimits())
        let (bot, _) = try await services.bots.register(name: "Later", url: "http://127.0.0.1:9", allowedData: .all, description: nil, as: .localAdmin)
        let alice = try await Self.user(services, "alice")
        let chat = try await services.chats.create(kind: .personal, title: nil, description: nil, members: [bot.user.id], as: alice).0.chat.id
        _ = try await services.messages.send(OutgoingMessage(text: "hello"), to: chat, as: alice)
        let claimed = try await services.bots.claimJobs(limit: 10, lease: 600, skipping: [])
        #expect(!claimed.isEmpty)
        #expect(try await services.bots.claimJobs(limit: 10, lease: 600, skipping: []).isEmpty, "leased")
        try await services.bots.releaseJobs(claimed)
        let again = try await services.bots.claimJobs(limit: 10, lease: 600, skipping: [])
        #expect(Set(again.map(\.id)) == Set(claimed.map(\.id)) && again.allSatisfy { $0.attempts == 0 })
    }
}
