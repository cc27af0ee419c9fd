import Crypto
import Foundation
import Logging
import Synchronization
import Testing
import VestnikCore
import VestnikModel
import VestnikStoreSQLite

/// The server key that seals bot secrets: its file, its fingerprint in the database, and how
/// sealed secrets are bound to their bot.
@Suite struct BotSecretsTests {
    static func services(over store: SQLiteStore, key: SymmetricKey) async throws -> Services {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let hub = EventHub(store: store, startingAfter: try await store.headSeq(), bufferLimit: 1000, logger: logger)
        return Services(
            context: CoreContext(store: store, hub: hub, logger: logger), hasher: .fastForTests,
            loginLimits: LoginLimits(failuresPerAccount: 3, attemptsPerAddress: 100, window: 60),
            botSecrets: SecretBox(key: key))
    }

    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("the key file is created once (0600) and reused; a path that exists but cannot be read is an error, never replaced")
    func keyFileIsNeverReplaced() throws {
        let directory = try Self.temporaryDirectory()
        let path = directory.appendingPathComponent("bot-secrets.key").path
        let first = try SecretBox.loadOrCreate(path: path)
        let again = try SecretBox.loadOrCreate(path: path)
        #expect(first.fingerprint == again.fingerprint)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let bot = UserID.random()
        #expect(try again.open(try first.seal("s3cret", bot: bot), bot: bot, format: 1) == "s3cret")

        // A dangling symlink stands for a key file that exists but cannot be read (tests run as
        // root, so permissions cannot make one unreadable).
        let dangling = directory.appendingPathComponent("dangling.key").path
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: directory.appendingPathComponent("gone/key").path)
        #expect(throws: VestnikError.self) { try SecretBox.loadOrCreate(path: dangling) }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("gone/key").path), "nothing was created behind it")
    }

    @Test("a second server key against the same database is refused at start")
    func fingerprintMismatchIsRefused() async throws {
        let directory = try Self.temporaryDirectory()
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let key = SymmetricKey(size: .bits256)
        try await Self.services(over: store, key: key).bots.adoptServerKey()
        try await Self.services(over: store, key: key).bots.adoptServerKey()
        let other = try await Self.services(over: store, key: SymmetricKey(size: .bits256))
        await #expect(throws: VestnikError.self) { try await other.bots.adoptServerKey() }
    }

    @Test("a sealed secret is bound to its bot: moved onto another bot it does not open")
    func sealedSecretsAreBoundToTheirBot() async throws {
        let directory = try Self.temporaryDirectory()
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let services = try await Self.services(over: store, key: SymmetricKey(size: .bits256))
        try await services.bots.adoptServerKey()
        let (a, secretA) = try await services.bots.register(name: "A", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let (b, _) = try await services.bots.register(name: "B", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        #expect(try await services.bots.credentials(for: a.user.id)?.secret == secretA)
        // Someone with write access to the database copies A's sealed secret onto B.
        try await store.write { tx in
            guard var bot = try await tx.bot(b.user.id), let source = try await tx.bot(a.user.id) else { return }
            bot.sealedSecret = source.sealedSecret
            try await tx.updateBot(bot)
        }
        await #expect(throws: VestnikError.self) { _ = try await services.bots.credentials(for: b.user.id) }
    }

    @Test("secrets sealed before migration 5 (no bot binding) are re-sealed at start and keep working")
    func legacySecretsAreResealed() async throws {
        let directory = try Self.temporaryDirectory()
        let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path)
        let key = SymmetricKey(size: .bits256)
        let services = try await Self.services(over: store, key: key)
        let (registration, _) = try await services.bots.register(
            name: "Old", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        // What an older server stored: AES-GCM without additional data, format 0.
        let legacy = try #require(try AES.GCM.seal(Data("legacy-secret".utf8), using: key).combined)
        try await store.write { tx in
            guard var bot = try await tx.bot(botID) else { return }
            bot.sealedSecret = legacy
            bot.secretFormat = 0
            try await tx.updateBot(bot)
        }
        try await services.bots.adoptServerKey()
        let stored = try #require(try await store.read { try await $0.bot(botID) })
        #expect(stored.secretFormat == SecretBox.currentFormat && stored.sealedSecret != legacy)
        #expect(try await services.bots.credentials(for: botID)?.secret == "legacy-secret")
    }

    @Test("an async bot message and its callback are one transaction")
    func messageAndCallbackCommitTogether() async throws {
        let env = try await TestEnvironment()
        let (registration, _) = try await env.services.bots.register(
            name: "Async", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        let alice = try await env.user("alice")
        let chat = try await env.services.chats.create(kind: .personal, title: nil, description: nil, members: [botID], as: alice).0.chat.id
        _ = try await env.services.bots.claimJobs(limit: 100, lease: 600, skipping: [])
        let counting = CountingStore(env.store)
        let bots = BotService(
            context: CoreContext(store: counting, hub: env.services.context.hub, logger: env.services.context.logger),
            box: SecretBox(key: SymmetricKey(size: .bits256)), chats: env.services.chats, messages: env.services.messages)
        let message = try await bots.send(
            BotOutgoing(syncID: .random(), text: "done", mentions: [], extras: MessageExtras()), to: chat, callback: true, as: botID)
        #expect(counting.writes == 1, "message and callback in one write transaction")
        let jobs = try await env.services.bots.claimJobs(limit: 100, lease: 600, skipping: [])
        #expect(jobs.contains { $0.job.callback?.syncID == message.id && $0.job.callback?.errorCode == nil })
    }
}

/// Counts write transactions (and login-attempt counts) of the store it wraps.
final class CountingStore: Store {
    let base: any Store
    private let count = Synchronization.Mutex(0)
    private let attempts = Synchronization.Mutex(0)
    var writes: Int { count.withLock { $0 } }
    var attemptsCounted: Int { attempts.withLock { $0 } }

    init(_ base: any Store) { self.base = base }

    func read<T: Sendable>(_ body: @Sendable (any StoreReader) async throws -> T) async throws -> T { try await base.read(body) }

    func write<T: Sendable>(intent: WriteIntent?, _ body: @escaping @Sendable (any StoreWriter) async throws -> T) async throws -> T {
        count.withLock { $0 += 1 }
        return try await base.write(intent: intent, body)
    }

    func committedEvents(after: EventSeq, through: EventSeq, limit: Int) async throws -> [CommittedEvent] {
        try await base.committedEvents(after: after, through: through, limit: limit)
    }

    func headSeq() async throws -> EventSeq { try await base.headSeq() }

    func countAttempt(under key: AttemptKey, limit: AttemptLimit, at now: Date?) async throws -> AttemptCount {
        attempts.withLock { $0 += 1 }
        return try await base.countAttempt(under: key, limit: limit, at: now)
    }

    func uncountAttempt(under key: AttemptKey, limit: AttemptLimit, countedUntil: Date, at now: Date?) async throws {
        try await base.uncountAttempt(under: key, limit: limit, countedUntil: countedUntil, at: now)
    }

    func forgetAttempts(under key: AttemptKey) async throws { try await base.forgetAttempts(under: key) }

    func pruneAttempts(before now: Date?, limit: Int) async throws -> Int { try await base.pruneAttempts(before: now, limit: limit) }
}
