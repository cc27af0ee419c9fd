import Foundation
import HTTPTypes
import Logging
import Synchronization
import VestnikAPI
import WSClient

/// One element of a ``RealtimeStream``.
public enum RealtimeEvent: Sendable, Hashable {
    /// A durable event with its log position. Each position is delivered at most once per stream,
    /// in increasing order, across any number of reconnects.
    case event(SequencedEvent)
    /// A typing or presence notice. Never replayed: ephemeral events that happen while the stream is
    /// reconnecting are lost.
    case ephemeral(ServerEvent)
    /// The server finished sending what was missed; everything after this is live. Sent after every
    /// (re)connect; the value is the stream's position.
    case ready(EventSeq)
    /// The server no longer has the events after the stream's position (or its log went backwards).
    /// Durable events were lost: refetch chats and history (and anything else derived from events)
    /// now, and keep applying the events that follow — the stream continues by itself from the
    /// server's head (on the same connection or a new one), and a `.ready` follows.
    case resyncRequired
    /// The connection was lost or refused; the stream reconnects after `delay` and resumes from the
    /// last delivered position. `attempt` counts failed attempts since the last stable connection
    /// (1-based); `delay` grows with it.
    case reconnecting(attempt: Int, delay: Duration, reason: String)
}

/// Tunables of the realtime stream.
public struct RealtimeConfiguration: Sendable {
    /// First reconnect delay; it doubles on every failed attempt up to ``maxBackoff`` and is reset by
    /// a successful connection (one that reached `ready` and lasted at least a second). A ±20 % jitter is applied (the result never exceeds
    /// ``maxBackoff``).
    public var initialBackoff: Duration
    /// Longest reconnect delay.
    public var maxBackoff: Duration
    /// WebSocket ping period used to notice dead connections; `nil` disables pings.
    public var pingInterval: Duration?
    /// Largest frame accepted from the server; bigger ones drop the connection (then reconnect).
    public var maxFrameBytes: Int
    /// Events buffered for a slow consumer before socket reads pause.
    public var bufferSize: Int
    /// Server `error` codes after which the stream ends by throwing instead of reconnecting.
    public var fatalErrorCodes: Set<String>

    /// Creates a configuration; the defaults suit apps and the CLI (100 ms doubling to 5 s).
    public init(
        initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5),
        pingInterval: Duration? = .seconds(30), maxFrameBytes: Int = 1 << 20, bufferSize: Int = 256,
        fatalErrorCodes: Set<String> = [VestnikClientError.Code.sessionRevoked, VestnikClientError.Code.notAuthenticated]
    ) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.pingInterval = pingInterval
        self.maxFrameBytes = maxFrameBytes
        self.bufferSize = bufferSize
        self.fatalErrorCodes = fatalErrorCodes
    }
}

extension VestnikClient {
    /// The realtime stream (`GET /api/v1/stream` over WebSocket) with automatic reconnect-and-resume.
    ///
    /// - Parameter since: Resume after this log position (the `seq` of the last durable event you
    ///   processed, or ``EventPage/next`` of an HTTP catch-up). `nil` means live only, from the moment
    ///   of connecting.
    ///
    /// Behaviour:
    /// - Nothing happens until you iterate. Each iteration opens its own connection.
    /// - The stream remembers the position of the last durable event it delivered (or the one a
    ///   `ready` reported). On any disconnect (network loss, server restart, `slow_consumer`, …) it
    ///   yields ``RealtimeEvent/reconnecting(attempt:delay:reason:)``, waits with exponential backoff
    ///   and reconnects with `since` = that position. Durable events at or below the position are
    ///   dropped, so none is delivered twice.
    /// - On `resync_required` it yields ``RealtimeEvent/resyncRequired`` and continues live from the
    ///   server's head (the position the server names in that frame).
    /// - When the server says the session is gone (`session_revoked`, `unauthenticated`, or the
    ///   upgrade is refused and `GET /me` answers 401) the iteration throws ``VestnikClientError``.
    /// - It never ends by itself otherwise. Cancel the consuming task or stop iterating to close it:
    ///   the connection task is cancelled and the socket closed.
    /// - It authenticates with the client's current ``VestnikClient/token`` on every (re)connect.
    ///
    /// Delivery has back-pressure: at most ``RealtimeConfiguration/bufferSize`` events are buffered,
    /// then socket reads pause until you catch up.
    public func stream(since: EventSeq? = nil, configuration: RealtimeConfiguration = RealtimeConfiguration()) -> RealtimeStream {
        RealtimeStream(client: self, since: since, configuration: configuration)
    }

    /// The WebSocket URL of the stream: `ws://` for `http://` servers, `wss://` for `https://`.
    func streamURL(since: EventSeq?) throws -> String {
        let base = baseString
        guard let colon = base.firstIndex(of: ":") else {
            throw VestnikClientError.invalidArgument("server URL \(base) has no scheme")
        }
        let scheme: String
        switch base[..<colon].lowercased() {
        case "http", "ws": scheme = "ws"
        case "https", "wss": scheme = "wss"
        case let other: throw VestnikClientError.invalidArgument("unsupported server URL scheme \(other)")
        }
        var url = scheme + base[colon...] + "/api/v1/stream"
        if let since { url += "?since=\(since)" }
        return url
    }
}

/// The auto-reconnecting realtime stream; see ``VestnikClient/stream(since:configuration:)``.
///
/// An `AsyncSequence` of ``RealtimeEvent``. Iterating starts a connection task (an unstructured
/// `Task` owned by the iterator); it is cancelled, and its socket closed, as soon as the consuming
/// task is cancelled, the loop is left, or the iterator is released. It throws only
/// ``VestnikClientError`` for a lost session (or an unusable server URL).
public struct RealtimeStream: AsyncSequence, Sendable {
    /// Each element is one ``RealtimeEvent``.
    public typealias Element = RealtimeEvent

    let client: VestnikClient
    let since: EventSeq?
    let configuration: RealtimeConfiguration

    /// Iterator of a ``RealtimeStream``; not to be shared between tasks.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let storage: IteratorStorage

        /// The next event; `nil` after the consuming task was cancelled.
        public mutating func next() async throws -> RealtimeEvent? {
            try await storage.handoff.next()
        }

        /// The next event, callable from any isolation (e.g. a `@MainActor` view model's
        /// `for try await` loop); `nil` after the consuming task was cancelled.
        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws -> RealtimeEvent? {
            try await storage.handoff.next()
        }
    }

    /// Starts the connection task and returns the iterator that owns it.
    public func makeAsyncIterator() -> AsyncIterator {
        let handoff = Handoff<RealtimeEvent>(capacity: configuration.bufferSize)
        let connector = RealtimeConnector(client: client, configuration: configuration, handoff: handoff)
        let since = self.since
        // The one unstructured task of the stream: cancelled by `Handoff.terminate()`, which runs when
        // the consumer is cancelled or the iterator (its storage) is deinitialised.
        let task = Task { await connector.run(since: since) }
        handoff.setProducer(task)
        return AsyncIterator(storage: IteratorStorage(handoff: handoff))
    }

    /// Ties the connection task's lifetime to the iterator's.
    final class IteratorStorage: Sendable {
        let handoff: Handoff<RealtimeEvent>
        init(handoff: Handoff<RealtimeEvent>) { self.handoff = handoff }
        deinit { handoff.terminate() }
    }
}

/// The reconnect loop behind ``RealtimeStream``.
struct RealtimeConnector: Sendable {
    let client: VestnikClient
    let configuration: RealtimeConfiguration
    let handoff: Handoff<RealtimeEvent>

    /// What one connection ended with.
    enum Ending: Sendable {
        case fatal(VestnikClientError)
        case serverError(code: String, message: String)
        case closed(String)
        case failed(any Error)
    }

    /// Per-connection bookkeeping shared with the (`@Sendable`) WebSocket handler.
    final class Connection: Sendable {
        struct State {
            var sawReady = false
            var ending: Ending?
        }
        let state = Mutex(State())
    }

    /// The stream position: the last durable event delivered (or reported by `ready`).
    final class Cursor: Sendable {
        private let value: Mutex<EventSeq?>
        init(_ seq: EventSeq?) { value = Mutex(seq) }
        var seq: EventSeq? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    /// Just enough of a ``ServerFrame`` to route it even when its event is of an unknown type.
    struct FrameHeader: Decodable {
        var type: String
        var seq: EventSeq?
        var code: String?
        var message: String?
    }

    func run(since: EventSeq?) async {
        do {
            try await loop(cursor: Cursor(since))
            handoff.finish()
        } catch is CancellationError {
            handoff.finish()
        } catch {
            if Task.isCancelled { handoff.finish() } else { handoff.finish(throwing: error) }
        }
    }

    private func loop(cursor: Cursor) async throws {
        var failures = 0
        while true {
            try Task.checkCancellation()
            let url = try client.streamURL(since: cursor.seq)
            let connection = Connection()
            let connectedAt = ContinuousClock.now
            let ending = await connect(url: url, cursor: cursor, connection: connection)
            try Task.checkCancellation()

            let reason: String
            switch ending {
            case .fatal(let error):
                throw error
            case .failed(let error as CancellationError):
                throw error
            case .failed(let error):
                if let authError = await authenticationFailure(after: error) { throw authError }
                reason = Self.describe(error)
            case .serverError(let code, let message):
                reason = message.isEmpty ? code : "\(message) (\(code))"
            case .closed(let text):
                reason = text
            }

            // The backoff restarts only after a connection that got to `ready` and lasted a while, so a
            // server that accepts and immediately drops us is not hammered every 100 ms.
            let stable = connection.state.withLock { $0.sawReady } && ContinuousClock.now - connectedAt >= .seconds(1)
            failures = stable ? 1 : failures + 1
            let delay = backoff(attempt: failures)
            try await handoff.send(.reconnecting(attempt: failures, delay: delay, reason: reason))
            try await Task.sleep(for: delay)
        }
    }

    /// `initialBackoff * 2^(attempt-1)` with ±20 % jitter, never more than `maxBackoff`.
    func backoff(attempt: Int) -> Duration {
        var delay = configuration.initialBackoff
        for _ in 1..<max(1, attempt) where delay < configuration.maxBackoff { delay *= 2 }
        return min(delay * Double.random(in: 0.8...1.2), configuration.maxBackoff)
    }

    /// After a refused upgrade: is the token the reason? (The upgrade response's status is not
    /// visible through WSClient, so ask `GET /me`.)
    private func authenticationFailure(after error: any Error) async -> VestnikClientError? {
        guard let wsError = error as? WebSocketClientError, wsError == .webSocketUpgradeFailed else { return nil }
        guard client.token != nil else {
            return VestnikClientError(status: nil, code: VestnikClientError.Code.notAuthenticated, message: "not logged in")
        }
        do {
            _ = try await client.me()
            return nil
        } catch let probe as VestnikClientError where probe.isAuthenticationFailure {
            return probe
        } catch {
            return nil
        }
    }

    static func describe(_ error: any Error) -> String {
        if let clientError = error as? VestnikClientError { return clientError.message }
        if let wsError = error as? WebSocketClientError {
            return wsError == .webSocketUpgradeFailed ? "the server refused the stream" : String(describing: wsError)
        }
        return describeTransportError(error)
    }

    /// One connection: connect, pump frames into the hand-off, report how it ended.
    private func connect(url: String, cursor: Cursor, connection: Connection) async -> Ending {
        var wsConfiguration = WebSocketClientConfiguration(
            maxFrameSize: configuration.maxFrameBytes,
            closeTimeout: .seconds(2),
            autoPing: configuration.pingInterval.map { .enabled(timePeriod: $0) } ?? .disabled,
            validateUTF8: true
        )
        if let token = client.token {
            wsConfiguration.additionalHeaders[.authorization] = "Bearer \(token)"
        }
        wsConfiguration.additionalHeaders[.userAgent] = client.configuration.userAgent
        let logger = Logger(label: "vestnik.realtime", factory: { _ in SwiftLogNoOpLogHandler() })
        let maxFrameBytes = configuration.maxFrameBytes
        let handler = FrameHandler(configuration: configuration, handoff: handoff, cursor: cursor, connection: connection)

        do {
            let closeFrame = try await WebSocketClient.connect(
                url: url, configuration: wsConfiguration, logger: logger
            ) { inbound, _, _ in
                for try await message in inbound.messages(maxSize: maxFrameBytes) {
                    guard case .text(let text) = message else { continue }
                    if try await handler.handle(text) == .stop { return }
                }
            }
            if let ending = connection.state.withLock({ $0.ending }) { return ending }
            if let closeFrame {
                let reason = closeFrame.reason.flatMap { $0.isEmpty ? nil : $0 }
                return .closed("connection closed by the server (\(closeFrame.closeCode)\(reason.map { ": \($0)" } ?? ""))")
            }
            return .closed("connection closed")
        } catch {
            if let ending = connection.state.withLock({ $0.ending }) { return ending }
            return .failed(error)
        }
    }
}

/// Turns the server's text frames into ``RealtimeEvent``s, deduplicating durable events.
struct FrameHandler: Sendable {
    enum Next { case `continue`, stop }

    let configuration: RealtimeConfiguration
    let handoff: Handoff<RealtimeEvent>
    let cursor: RealtimeConnector.Cursor
    let connection: RealtimeConnector.Connection

    /// Handles one frame; `.stop` when the server announced it is closing the stream.
    func handle(_ text: String) async throws -> Next {
        let data = Data(text.utf8)
        // A frame that is not even a frame is skipped; the connection stays up.
        guard let header = try? VestnikJSON.decode(RealtimeConnector.FrameHeader.self, from: data) else { return .continue }

        switch header.type {
        case ServerFrame.Kind.event.rawValue:
            guard let seq = header.seq else { return .continue }
            if let last = cursor.seq, seq <= last { return .continue }  // already delivered
            guard let frame = try? VestnikJSON.decode(ServerFrame.self, from: data), let event = frame.event else {
                // An event type this SDK does not know (newer server): skip it but move past it, so
                // a reconnect does not ask for it again.
                cursor.seq = seq
                return .continue
            }
            try await handoff.send(.event(SequencedEvent(seq: seq, event: event)))
            cursor.seq = seq

        case ServerFrame.Kind.ephemeral.rawValue:
            guard let frame = try? VestnikJSON.decode(ServerFrame.self, from: data), let event = frame.event else {
                return .continue
            }
            try await handoff.send(.ephemeral(event))

        case ServerFrame.Kind.ready.rawValue:
            connection.state.withLock { $0.sawReady = true }
            let position: EventSeq
            if let seq = header.seq {
                if let last = cursor.seq, seq < last {
                    // The server's log is behind what we already delivered (restored or reset server):
                    // our state cannot be trusted any more.
                    cursor.seq = seq
                    try await handoff.send(.resyncRequired)
                } else {
                    cursor.seq = seq
                }
                position = seq
            } else {
                position = cursor.seq ?? .zero
            }
            try await handoff.send(.ready(position))

        case ServerFrame.Kind.resyncRequired.rawValue:
            // The server cannot replay from our position. It continues live from `seq` (the
            // events that follow are all newer), so that becomes our position; if it closes the
            // socket instead (or sends no `seq`), the next connection resumes from `seq` or, without
            // one, starts live from the head.
            cursor.seq = header.seq
            try await handoff.send(.resyncRequired)

        case ServerFrame.Kind.error.rawValue:
            let code = header.code ?? "stream_error"
            let message = header.message ?? ""
            if configuration.fatalErrorCodes.contains(code) {
                let error = VestnikClientError(
                    status: nil, code: code, message: message.isEmpty ? "the stream was closed: \(code)" : message)
                connection.state.withLock { $0.ending = .fatal(error) }
            } else {
                connection.state.withLock { $0.ending = .serverError(code: code, message: message) }
            }
            return .stop

        default:
            break  // a frame kind this SDK does not know
        }
        return .continue
    }
}
