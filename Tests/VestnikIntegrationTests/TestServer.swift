import AsyncHTTPClient
import Foundation
import Logging
import Synchronization
import Testing
import VestnikCore
import VestnikKit
import VestnikModel
import VestnikServer

/// A real server on 127.0.0.1, port 0, with its own data directory, run in-process.
final class TestServer: Sendable {
    let port: Int
    let services: Services
    let dataDirectory: String
    private let task: Task<Void, any Error>

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    static func start(dataDirectory: String? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-it-\(UUID().uuidString)").path
        configuration.fastPasswordHashing = true
        configuration.logLevel = .critical
        configuration.foreignWritePollInterval = .milliseconds(100)
        configuration.databaseURL = try await TestBackend.freshDatabaseURL()
        configuration.databasePoolSize = 4
        if configuration.databaseURL != nil {
            configuration.botKeyFile = (configuration.dataDirectory as NSString).appendingPathComponent("bot-secrets.key")
        }
        configure(&configuration)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(
            configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            onListening: { port in continuation.yield(port) })
        let task = Task {
            // A server that fails to start ends the port stream, so the caller fails instead of hanging.
            defer { continuation.finish() }
            try await app.run(handleSignals: false)
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ServerFailedToStart() }
        return TestServer(port: port, services: app.services, dataDirectory: configuration.dataDirectory, task: task)
    }

    private init(port: Int, services: Services, dataDirectory: String, task: Task<Void, any Error>) {
        self.port = port
        self.services = services
        self.dataDirectory = dataDirectory
        self.task = task
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

    /// Creates a user through the admin path and returns a logged-in client.
    func client(_ login: String, name: String? = nil, email: String? = nil) async throws -> (VestnikClient, User) {
        let password = "password-\(login)-123"
        let (user, _) = try await services.accounts.createUser(
            NewAccount(login: login, displayName: name ?? login.capitalized, email: email), password: password, as: .localAdmin)
        let client = VestnikClient(serverURL: url, token: nil)
        _ = try await client.login(login: login, password: password, deviceName: "integration test")
        return (client, user)
    }

    struct ServerFailedToStart: Error {}
}

/// Collects durable events from a realtime stream in the background.
actor EventCollector {
    private(set) var events: [SequencedEvent] = []
    private(set) var ephemeral: [ServerEvent] = []
    private(set) var readyCount = 0
    private(set) var reconnects = 0
    private(set) var resyncs = 0
    private(set) var failure: (any Error)?

    func record(_ event: RealtimeEvent) {
        switch event {
        case .event(let e): events.append(e)
        case .ephemeral(let e): ephemeral.append(e)
        case .ready: readyCount += 1
        case .reconnecting: reconnects += 1
        case .resyncRequired: resyncs += 1
        }
    }

    func fail(_ error: any Error) { failure = error }

    var messagesCreated: [Message] {
        events.compactMap { if case .messageCreated(let m) = $0.event { m } else { nil } }
    }

    var lastSeq: EventSeq? { events.last?.seq }

    /// Starts consuming `stream` into a collector; cancel the returned task to stop.
    static func start(_ stream: RealtimeStream) -> (EventCollector, Task<Void, Never>) {
        let collector = EventCollector()
        let task = Task {
            do {
                for try await event in stream { await collector.record(event) }
            } catch {
                await collector.fail(error)
            }
        }
        return (collector, task)
    }

    /// Waits until `condition` holds, up to `timeout`.
    func wait(timeout: Duration = .seconds(10), _ condition: @Sendable (EventCollector) async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return await condition(self)
    }
}

func waitUntil(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
