import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
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
    /// The PostgreSQL database it runs on (nil: SQLite in ``dataDirectory``); another node of the
    /// same deployment is started with both.
    let databaseURL: String?
    private let serving: GracefullyStopped

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
        let logger: Logger
        if Self.traceShutdown {
            configuration.logLevel = .debug
            logger = Logger(label: "server-\(UUID().uuidString.prefix(6))", factory: { ShutdownTraceLog(label: $0) })
        } else {
            logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(
            configuration: configuration, logger: logger,
            onListening: { port in continuation.yield(port) })
        let serving = GracefullyStopped(app.serviceGroup(handleSignals: false)) {
            // A server that fails to start ends the port stream, so the caller fails instead of hanging.
            continuation.finish()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ServerFailedToStart() }
        return TestServer(
            port: port, services: app.services, dataDirectory: configuration.dataDirectory, databaseURL: configuration.databaseURL, serving: serving)
    }

    private init(port: Int, services: Services, dataDirectory: String, databaseURL: String?, serving: GracefullyStopped) {
        self.port = port
        self.services = services
        self.dataDirectory = dataDirectory
        self.databaseURL = databaseURL
        self.serving = serving
    }

    func stop() async {
        if Self.traceShutdown { ShutdownTraceLog.write("stopping server on \(port)") }
        await serving.stop()
        if Self.traceShutdown { ShutdownTraceLog.write("stopped server on \(port)") }
    }

    /// `VESTNIK_TEST_SHUTDOWN_TRACE=1` prints when each in-process server starts and finishes
    /// stopping, and which of its services stopped (see ``ShutdownTraceLog``): a shutdown that
    /// never finishes then names the service it waits for.
    static let traceShutdown = ProcessInfo.processInfo.environment["VESTNIK_TEST_SHUTDOWN_TRACE"] != nil

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

/// A service group run in the background and stopped the way `vestnik serve` stops on SIGTERM.
///
/// Why not by cancelling its task: a Hummingbird server whose serving task is cancelled while it
/// accepts a connection traps ("Deinited NIOAsyncWriter without calling finish()",
/// swift-nio#2813); a graceful shutdown closes the listener and serves what it accepted. Tests
/// meet that window often: a bot's fake server is stopped while the server under test retries
/// deliveries to it every 0.2 s. A shutdown that does not end within `timeout` is cancelled.
final class GracefullyStopped: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let finished: Finished

    private final class Finished: Sendable {
        let value = Atomic<Bool>(false)
    }

    init(_ group: ServiceGroup, whenDone: @escaping @Sendable () -> Void = {}) {
        let finished = Finished()
        self.group = group
        self.finished = finished
        task = Task {
            defer {
                finished.value.store(true, ordering: .releasing)
                whenDone()
            }
            try await group.run()
        }
    }

    /// Hummingbird applications and other services, in a group of their own without a log.
    convenience init(_ services: [any Service]) {
        self.init(ServiceGroup(configuration: .init(services: services, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))))
    }

    /// A shutdown still running after `timeout` (longer than a stream client's 15 s close
    /// timeout) is a failure of the test that stops it: `vestnik serve` relies on the same
    /// shutdown. It is then cancelled, so the test run goes on.
    func stop(timeout: Duration = .seconds(20)) async {
        await group.triggerGracefulShutdown()
        let deadline = ContinuousClock.now + timeout
        while !finished.value.load(ordering: .acquiring), ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if !finished.value.load(ordering: .acquiring) {
            Issue.record("a graceful shutdown did not end within \(timeout); cancelled instead")
            task.cancel()
        }
        _ = await task.result
    }

    /// For a `defer`: stops in the background.
    func stopLater() {
        Task { await stop() }
    }
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

/// Prints a server's "listening" and "service stopped" lines, nothing else (see
/// ``TestServer/traceShutdown``).
struct ShutdownTraceLog: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let text = "\(message)"
        guard text == "service stopped" || text == "listening" else { return }
        Self.write("\(label) \(text) \(metadata ?? [:])")
    }

    static func write(_ line: String) {
        FileHandle.standardError.write(Data("\(Date()) \(line)\n".utf8))
    }
}
